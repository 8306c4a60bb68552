import { describeStalledInstance } from '../support/rotation.js';

/** Issue 9 M1 for the acr-token provider; one harness per file (the broker's identity is process-wide). */
describeStalledInstance('acr-token');
