import type { FailedAuthentications } from '../audit/failedAuthentications.js';
import { errors, type BrokerError } from '../errors.js';
import type { CallerRateLimit } from '../issuance/callerRateLimit.js';

/**
 * A request that failed authentication, on any route: counted per address and minute, never recorded
 * one by one (anyone can send them), and, past the address's one allowance, answered 429 instead.
 */
export class AuthenticationFailures {
  constructor(
    private readonly addressLimit: CallerRateLimit,
    private readonly counts: FailedAuthentications,
    /** The answer's status, for the counts: how failures map to HTTP is decided in src/http. */
    private readonly statusOf: (error: BrokerError) => number,
  ) {}

  /** The problem to answer with: the failure itself, or 429 once the address has spent its allowance. */
  refuse(failure: BrokerError, clientIp: string): BrokerError {
    const allowance = this.addressLimit.take(clientIp);
    const problem = allowance.allowed ? failure : errors.anonymousRateLimited(allowance.retryAfterSeconds);
    this.counts.count(clientIp, problem.reason, this.statusOf(problem));
    return problem;
  }
}
