/**
 * Where the broker may send credentials: https anywhere, plain http only to this machine
 * (the sandbox and tests). Used for configured endpoints and for realms a registry names.
 */
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

export function isLoopbackUrl(url: URL): boolean {
  return LOOPBACK_HOSTS.has(url.hostname) || url.hostname.startsWith('127.');
}

export function isAllowedServiceUrl(text: string): boolean {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackUrl(url));
}

export const SERVICE_URL_RULE = 'must be an https URL (plain http only for 127.0.0.1/localhost) without user info';
