import { describeStalledInstance } from '../support/rotation.js';

/** Issue 9 M1 for the dockerhub provider; one harness per file (the broker's identity is process-wide). */
describeStalledInstance('dockerhub');
