"""WS-Security for zeep, done by wssignd.

``WssigndSignature`` is a zeep ``wsse`` plugin: zeep calls ``apply`` with
each outgoing envelope, which is signed by wssignd (``POST
/v1/soap/sign?profile=...``), and ``verify`` with each response, which
wssignd checks (``POST /v1/soap/verify?profile=...``). The private key never
enters this process; it stays in the token behind the daemon's Unix socket.

    client = zeep.Client(wsdl, wsse=WssigndSignature(verify_profile="partner"))

Refusals raise ``WssigndError`` (a ``zeep.exceptions.Error``) carrying the
daemon's stable ``code``; a response that fails verification raises
``InvalidSignature``, which is also zeep's own
``SignatureVerificationFailed``. Envelopes are never logged.
"""

import http.client
import json
import os
import socket
from urllib.parse import urlencode

from lxml import etree
from zeep.exceptions import Error, SignatureVerificationFailed

__all__ = ["WssigndSignature", "WssigndError", "InvalidSignature", "DEFAULT_SOCKET"]

DEFAULT_SOCKET = "/run/wssignd/wssignd.sock"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


class WssigndError(Error):
    """wssignd refused or failed a request, or could not be reached.

    ``code`` is the stable problem code (docs/errors.md), e.g. ``forbidden``
    or ``token-unavailable``; ``unreachable`` when the socket cannot be
    used. ``status`` is the HTTP status (0 when unreachable), ``problem`` the
    whole RFC 9457 document and ``request_id`` finds the daemon's log line.
    """

    def __init__(self, code, message, status=0, problem=None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.problem = problem or {}
        self.request_id = self.problem.get("request_id")


class InvalidSignature(WssigndError, SignatureVerificationFailed):
    """The response's WS-Security did not verify; ``code`` says why
    (``digest-mismatch``, ``untrusted-key``, ``timestamp-expired``, ...) and
    ``verdict`` is the daemon's whole JSON verdict."""

    def __init__(self, verdict):
        code = verdict.get("code", "invalid")
        super().__init__(code, "response signature refused: %s (%s)" % (verdict.get("detail", ""), code), 200)
        self.verdict = verdict


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class WssigndSignature:
    """A zeep ``wsse`` plugin that signs requests and verifies responses
    through wssignd.

    :param socket_path: the daemon's socket; default ``$WSSIGN_SOCKET``,
        else ``/run/wssignd/wssignd.sock``
    :param sign_profile: the ``[profiles.NAME]`` that signs requests, or
        None to send them unsigned
    :param verify_profile: the ``[verify.NAME]`` that responses must pass,
        or None to accept them unchecked
    :param timeout: seconds per daemon call
    """

    def __init__(self, socket_path=None, sign_profile="default", verify_profile="default", timeout=30):
        self.socket_path = socket_path or os.environ.get("WSSIGN_SOCKET", DEFAULT_SOCKET)
        self.sign_profile = sign_profile
        self.verify_profile = verify_profile
        self.timeout = timeout

    def apply(self, envelope, headers):
        """Sign the envelope (zeep's egress hook); returns the signed
        envelope and the HTTP headers."""
        if self.sign_profile is None:
            return envelope, headers
        body = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        signed = self._call("/v1/soap/sign", self.sign_profile, body, _content_type(envelope))
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        return etree.fromstring(signed, parser=parser), headers

    def verify(self, envelope):
        """Verify the response (zeep's ingress hook); raises
        ``InvalidSignature`` when the verdict is not valid."""
        if self.verify_profile is None:
            return envelope
        body = etree.tostring(envelope, encoding="utf-8", xml_declaration=True)
        out = self._call("/v1/soap/verify", self.verify_profile, body, _content_type(envelope))
        verdict = json.loads(out)
        if verdict.get("valid") is not True:
            raise InvalidSignature(verdict)
        return envelope

    def _call(self, route, profile, body, content_type):
        """POSTs body to the route with ?profile=; returns the body of a
        2xx answer, raises WssigndError otherwise."""
        path = route + "?" + urlencode({"profile": profile})
        conn = _UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": content_type})
                resp = conn.getresponse()
                data = resp.read()
            except OSError as e:
                raise WssigndError("unreachable", "wssignd at %s: %s" % (self.socket_path, e)) from None
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                problem = json.loads(data)
            except ValueError:
                problem = {}
            code = problem.get("code", "http-%d" % resp.status)
            raise WssigndError(code, "wssignd: %s: %s (%s, request %s)" % (
                problem.get("title", resp.reason), problem.get("detail", ""), code,
                problem.get("request_id")), resp.status, problem)
        return data


def _content_type(envelope):
    if etree.QName(envelope).namespace == SOAP12:
        return "application/soap+xml; charset=utf-8"
    return "text/xml; charset=utf-8"
