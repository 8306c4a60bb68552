import http, { createServer, type IncomingMessage, type RequestOptions, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { outboundFetch, sentByOutboundFetch } from '../../src/http/outboundFetch.js';

let server: Server | undefined;

async function serve(handler: (request: IncomingMessage, response: ServerResponse, body: string) => void): Promise<string> {
  server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    request.on('end', () => handler(request, response, body));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

describe('outbound calls keep the parts of fetch the broker relies on', () => {
  it('a form body arrives as a form; the answer is a Response with its status, headers and body', async () => {
    const url = await serve((request, response, body) => {
      response.writeHead(201, { 'content-type': 'application/json', 'x-seen-type': request.headers['content-type'] ?? '', 'set-cookie': ['a=1', 'b=2'] });
      response.end(JSON.stringify({ body, method: request.method }));
    });
    const response = await outboundFetch(`${url}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'password', scope: 'repository:a b:pull' }), signal: AbortSignal.timeout(2000) });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-seen-type')).toBe('application/x-www-form-urlencoded;charset=UTF-8');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await response.json()).toEqual({ body: 'grant_type=password&scope=repository%3Aa+b%3Apull', method: 'POST' });
  });

  it('a call that gets no answer in time rejects with the signal\'s reason', async () => {
    const url = await serve(() => undefined);
    const error = await outboundFetch(url, { signal: AbortSignal.timeout(100) }).catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('TimeoutError');
  });

  it('a body that stops arriving fails its reader with the signal\'s reason, not a reset', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      response.write('{"token":');
    });
    const response = await outboundFetch(url, { signal: AbortSignal.timeout(150) });
    expect(response.status).toBe(200);
    const error = await response.text().catch((caught: unknown) => caught);
    expect((error as Error).name).toBe('TimeoutError');
  });

  it('redirects are never followed: `manual` hands back the 3xx, `error` rejects', async () => {
    const url = await serve((_request, response) => {
      response.writeHead(302, { location: 'http://169.254.169.254/' });
      response.end();
    });
    const manual = await outboundFetch(url, { redirect: 'manual' });
    expect(manual.status).toBe(302);
    expect(manual.headers.get('location')).toBe('http://169.254.169.254/');
    await manual.body?.cancel();
    await expect(outboundFetch(url, { redirect: 'error' })).rejects.toThrow(TypeError);
  });

  it('a status fetch cannot represent, or no server at all, is a rejection, not a crash', async () => {
    const url = await serve((request, response) => {
      request.socket.end('HTTP/1.1 999 Odd\r\ncontent-length: 0\r\n\r\n');
      void response;
    });
    await expect(outboundFetch(url)).rejects.toBeInstanceOf(Error);
    const closed = new URL(url);
    server!.closeAllConnections();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    await expect(outboundFetch(`http://${closed.host}/`)).rejects.toThrow('fetch failed');
    await expect(outboundFetch('file:///etc/passwd')).rejects.toThrow(TypeError);
  });

  it('an answer without a body (204) frees its connection for the next call', async () => {
    const sockets = new Set<unknown>();
    const url = await serve((request, response) => {
      sockets.add(request.socket);
      response.writeHead(204);
      response.end();
    });
    for (let call = 0; call < 3; call++) {
      const response = await outboundFetch(url, { signal: AbortSignal.timeout(1000) });
      expect(response.status).toBe(204);
      expect(response.body).toBeNull();
    }
    expect(sockets.size).toBe(1);
  });

  it('a kept-alive connection the server has just closed costs a GET nothing (sent again on a new one); a POST is never repeated', async () => {
    // Answers the first request of each connection and drops the connection at its second, as a server whose idle timer ran out.
    let connections = 0;
    const requests: string[] = [];
    const raw: TcpServer = createTcpServer((socket) => {
      connections++;
      let served = 0;
      socket.on('error', () => undefined);
      socket.on('data', (chunk) => {
        const text = chunk.toString('latin1');
        if (!text.includes('\r\n\r\n')) return;
        requests.push(text.split(' ')[0]!);
        if (served++ === 0) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
        else socket.destroy();
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/`;
      expect(await (await outboundFetch(url)).text()).toBe('ok');
      expect(await (await outboundFetch(url)).text()).toBe('ok');
      expect(connections).toBe(2);
      // The second connection has answered once: the next request on it is dropped.
      requests.length = 0;
      const error = await outboundFetch(url, { method: 'POST', body: 'a=1' }).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(TypeError);
      expect(requests).toEqual(['POST']);
    } finally {
      await new Promise((resolve) => raw.close(resolve));
    }
  });

  it('the HTTP instrumentation can tell these calls from the SDKs\' (it leaves them out)', async () => {
    const url = await serve((_request, response) => response.end('{}'));
    const sent = vi.spyOn(http, 'request');
    try {
      await (await outboundFetch(url)).json();
      const options = sent.mock.calls[0]![1] as RequestOptions;
      expect(sentByOutboundFetch(options)).toBe(true);
      expect(sentByOutboundFetch({ agent: new http.Agent() })).toBe(false);
      expect(sentByOutboundFetch({})).toBe(false);
    } finally {
      sent.mockRestore();
    }
  });
});
