import { tokenFingerprint, type IssuanceRecord } from '../audit/issuanceRecord.js';
import type { IssuanceLog } from '../audit/issuanceLog.js';
import type { AuthenticationFailures } from '../auth/authenticationFailures.js';
import type { CallerIdentity } from '../auth/callerToken.js';
import { asBrokerError, BrokerError, errors } from '../errors.js';
import { errorSummary, type Logger } from '../logger.js';
import { telemetry } from '../telemetry/instruments.js';
import type { CallerRateLimit } from './callerRateLimit.js';
import type { IssuedLogin, LoginIssuer } from './loginIssuer.js';
import type { IssuedToken, TokenIssuer } from './tokenIssuer.js';
import type { AskedFor, ReadTokenRequest } from './tokenRequest.js';

/** Facts about the request itself, known before anything is decided. */
export interface RequestFacts {
  issuanceId: string;
  requestId: string;
  clientIp: string;
  receivedAt: Date;
}

/** Every token request answers within this, whichever dependency hangs (DESIGN: a quick 503, not a stuck build). */
const ANSWER_WITHIN_MS = 4_500;

export type Authentication = { caller: CallerIdentity } | { failure: BrokerError };

export type ExchangeOutcome = { issued: IssuedToken } | { login: IssuedLogin } | { refused: BrokerError };

/**
 * The token exchange, the broker's central promise: every decision on a token request is audited
 * before the answer leaves, and no token leaves without its record. One record is filled as the
 * exchange goes and written once (failed authentications excepted: anyone can send those, so they
 * are counted per address and minute instead of each costing a durable row).
 */
export class TokenExchange {
  constructor(
    private readonly issuer: TokenIssuer,
    private readonly issuances: IssuanceLog,
    private readonly callerLimit: CallerRateLimit,
    private readonly authenticationFailures: AuthenticationFailures,
    private readonly log: Logger,
    private readonly logins: LoginIssuer,
    /** The answer's status, for the record: how failures map to HTTP is decided in src/http, not here. */
    private readonly statusOf: (error: BrokerError) => number,
  ) {}

  async exchange(authentication: Authentication, readRequest: () => Promise<ReadTokenRequest>, facts: RequestFacts): Promise<ExchangeOutcome> {
    if ('failure' in authentication && authentication.failure.kind === 'unauthenticated') return { refused: this.unauthenticated(authentication.failure, facts) };
    return telemetry.span('token exchange', {}, async (span) => {
      const outcome = await this.decideAndRecord(authentication, readRequest, facts);
      span.setAttribute('outcome', 'refused' in outcome ? outcome.refused.reason : 'issued');
      return outcome;
    });
  }

  private async decideAndRecord(authentication: Authentication, readRequest: () => Promise<ReadTokenRequest>, facts: RequestFacts): Promise<ExchangeOutcome> {
    const record = new IssuanceEvent(facts, 'caller' in authentication ? authentication.caller : undefined);
    let outcome: ExchangeOutcome;
    try {
      // Authentication that could not be decided (Entra metadata down) is a failure of its own, recorded.
      if ('failure' in authentication) throw authentication.failure;
      const { caller } = authentication;
      const allowance = this.callerLimit.take(`${caller.tenantId}/${caller.objectId}`);
      if (!allowance.allowed) throw errors.rateLimited(allowance.retryAfterSeconds);
      const read = await readRequest();
      record.asked(read.asked, (host) => this.issuer.canonicalHost(host));
      if (!read.ok) throw read.problem;
      if (read.request.form === 'login') {
        record.loginAsked();
        const login = await this.logins.issue(caller, read.request, facts.issuanceId, facts.receivedAt);
        record.login(login);
        outcome = { login };
      } else {
        const issued = await this.issuer.issue(caller, read.request, facts.receivedAt);
        record.issued(issued);
        outcome = { issued };
      }
    } catch (error) {
      if (!(error instanceof BrokerError)) this.log.error('token issuance failed unexpectedly', { requestId: facts.requestId, error: errorSummary(error) });
      const problem = asBrokerError(error);
      record.refused(problem, this.statusOf(problem));
      outcome = { refused: problem };
    }
    const finished = record.finish();
    try {
      await this.issuances.record(finished, facts.receivedAt.getTime() + ANSWER_WITHIN_MS);
    } catch (auditError) {
      const problem = asBrokerError(auditError);
      observe({ ...finished, outcome: 'failed', reason: problem.reason }, finished.latencyMs);
      return { refused: problem };
    }
    observe(finished, finished.latencyMs);
    return outcome;
  }

  /** Counted, never recorded one by one; past the address's allowance the answer is 429, not 401. */
  private unauthenticated(failure: BrokerError, facts: RequestFacts): BrokerError {
    const problem = this.authenticationFailures.refuse(failure, facts.clientIp);
    observe({ registry: undefined, outcome: 'denied', reason: problem.reason }, Date.now() - facts.receivedAt.getTime());
    return problem;
  }
}

function observe(record: Pick<IssuanceRecord, 'registry' | 'outcome' | 'reason' | 'form'>, durationMs: number): void {
  telemetry.issuance({ registry: record.registry, outcome: record.outcome, reason: record.reason, form: record.form ?? 'token' }, durationMs);
}

/** The one audit record of one token request, filled in as the exchange learns more. */
class IssuanceEvent {
  private record: IssuanceRecord;

  constructor(
    private readonly facts: RequestFacts,
    caller: CallerIdentity | undefined,
  ) {
    this.record = {
      issuanceId: facts.issuanceId,
      requestId: facts.requestId,
      time: facts.receivedAt,
      outcome: 'failed',
      reason: 'internal-error',
      status: 500,
      tenantId: caller?.tenantId,
      objectId: caller?.objectId,
      appId: caller?.appId,
      requestedScopes: [],
      grantedScopes: [],
      grantIds: [],
      latencyMs: 0,
      clientIp: facts.clientIp,
    };
  }

  asked(asked: AskedFor, canonicalHost: (host: string) => string): void {
    this.record.requestedScopes = asked.scopes;
    if (asked.registry !== undefined) this.record.registry = canonicalHost(asked.registry);
  }

  issued(issued: IssuedToken): void {
    this.granted(issued, issued.token, { credentialVersion: issued.credentialVersion, upstreamScope: issued.upstreamScope });
  }

  /** Refusals of login requests say so too. */
  loginAsked(): void {
    this.record.form = 'login';
  }

  /** The password's SHA-256 prefix, never the password; `tokenReused` when the same credential went out before. */
  login(login: IssuedLogin): void {
    this.granted(login, login.password, { form: 'login', credentialId: login.credentialId });
  }

  private granted(
    what: { entry: { host: string }; scopes: string[]; grantIds: string[]; expiresAt: Date; reused: boolean },
    secret: string,
    extra: Partial<IssuanceRecord>,
  ): void {
    Object.assign(this.record, {
      registry: what.entry.host,
      outcome: 'issued',
      reason: 'issued',
      status: 200,
      grantedScopes: what.scopes,
      grantIds: what.grantIds,
      expiresAt: what.expiresAt,
      tokenFingerprint: tokenFingerprint(secret),
      tokenReused: what.reused,
      ...extra,
    } satisfies Partial<IssuanceRecord>);
  }

  refused(problem: BrokerError, status: number): void {
    Object.assign(this.record, {
      outcome: problem.isFailure ? 'failed' : 'denied',
      reason: problem.reason,
      status,
    } satisfies Partial<IssuanceRecord>);
  }

  finish(): IssuanceRecord {
    return { ...this.record, latencyMs: Date.now() - this.facts.receivedAt.getTime() };
  }
}
