/**
 * Where the broker may send credentials: https anywhere, plain http only to this machine
 * (the sandbox and tests). Used for configured endpoints and for realms a registry names.
 * Loopback is exactly `localhost`, an IPv4 literal in 127.0.0.0/8, or `[::1]`: `127.evil.com` is not.
 */
const IPV4_LOOPBACK = /^127(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || IPV4_LOOPBACK.test(hostname);
}

export function isLoopbackUrl(url: URL): boolean {
  return isLoopbackHostname(url.hostname);
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
