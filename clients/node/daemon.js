'use strict';
// The HTTP call to wssignd over its Unix socket, and its error type.

const http = require('node:http');

const DEFAULT_SOCKET = '/run/wssignd/wssignd.sock';
const SOAP12 = /^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--[\s\S]*?-->\s*)*<(?:[\w.-]+:)?Envelope\b[^>]*=\s*["']http:\/\/www\.w3\.org\/2003\/05\/soap-envelope["']/;

/**
 * wssignd refused or failed a request, could not be reached, or found a
 * response's WS-Security invalid. `code` is the stable code: the problem's
 * (docs/errors.md, e.g. "forbidden", "token-unavailable"), the verdict's
 * when a response is refused (e.g. "digest-mismatch"; `verdict` then holds
 * the whole verdict), or "unreachable". `status` is the HTTP status (0 when
 * unreachable), `problem` the RFC 9457 document, `requestId` finds the
 * daemon's log line.
 */
class WssigndError extends Error {
  constructor(code, message, { status = 0, problem = {}, verdict } = {}) {
    super(message);
    this.name = 'WssigndError';
    this.code = code;
    this.status = status;
    this.problem = problem;
    this.requestId = problem.request_id;
    if (verdict) this.verdict = verdict;
  }
}

/** The Content-Type for an envelope: SOAP 1.2 or 1.1 by its namespace. */
function contentType(xml) {
  return SOAP12.test(xml) ? 'application/soap+xml; charset=utf-8' : 'text/xml; charset=utf-8';
}

/**
 * POSTs body to route?profile=profile on the socket; resolves with the
 * response body (a string) of a 2xx answer, rejects with a WssigndError.
 */
function post({ socketPath, timeout }, route, profile, body) {
  return new Promise((resolve, reject) => {
    const data = Buffer.from(body, 'utf8');
    const req = http.request({
      socketPath,
      method: 'POST',
      path: `${route}?${new URLSearchParams({ profile })}`,
      headers: { 'Content-Type': contentType(body), 'Content-Length': data.length },
      timeout,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const out = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode < 400) return resolve(out);
        let problem = {};
        try { problem = JSON.parse(out); } catch { /* not a problem document */ }
        const code = problem.code || `http-${res.statusCode}`;
        reject(new WssigndError(code,
          `wssignd: ${problem.title || res.statusMessage}: ${problem.detail || ''} (${code}, request ${problem.request_id || '-'})`,
          { status: res.statusCode, problem }));
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
    req.on('error', (e) => reject(e instanceof WssigndError ? e
      : new WssigndError('unreachable', `wssignd at ${socketPath}: ${e.message}`)));
    req.end(data);
  });
}

module.exports = { DEFAULT_SOCKET, WssigndError, contentType, post };
