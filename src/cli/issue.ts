import type { z } from 'zod';
import { loginAnswerSchema, tokenAnswerSchema, type LoginAnswer, type TokenAnswer } from './answers.js';
import { callBroker, callerToken, CliError, managedIdentity } from './brokerClient.js';

/** One credential request, as every workload-side command makes it. */
export interface CredentialRequest {
  broker: string;
  audience: string;
  /** A user-assigned identity's client ID; the system-assigned one without. */
  clientId?: string;
  registry: string;
  scopes: string[];
  ttlSeconds?: number;
  /** How this command selects a user-assigned identity (the hint when no token comes); the --client-id flag by default. */
  selecting?: string;
}

async function post<T>(request: CredentialRequest, form: 'token' | 'login', schema: z.ZodType<T>): Promise<T> {
  const bearer = await callerToken(managedIdentity(request.clientId), request.audience, request.selecting);
  const body = {
    registry: request.registry,
    scopes: request.scopes,
    ...(form === 'login' ? { form } : {}),
    ...(request.ttlSeconds === undefined ? {} : { ttlSeconds: request.ttlSeconds }),
  };
  const answer = schema.safeParse(await callBroker<unknown>(request.broker, '/v1/tokens', bearer, { method: 'POST', body }));
  if (!answer.success) throw new CliError(`the broker's answer is not a ${form} credential (${answer.error.issues[0]?.path.join('.')}: ${answer.error.issues[0]?.message})`);
  return answer.data;
}

export function issueToken(request: CredentialRequest): Promise<TokenAnswer> {
  return post(request, 'token', tokenAnswerSchema);
}

export function issueLogin(request: CredentialRequest): Promise<LoginAnswer> {
  return post(request, 'login', loginAnswerSchema);
}
