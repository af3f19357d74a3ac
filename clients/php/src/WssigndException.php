<?php

declare(strict_types=1);

namespace Wssignd;

/**
 * wssignd refused or failed a request, could not be reached, or found a
 * response's WS-Security invalid.
 *
 * It is a \SoapFault, so code that already catches SoapFault around its
 * calls catches it too; faultcode is "Client" (the failure is on this side
 * of the wire). Branch on getProblemCode(): the daemon's stable code
 * (docs/errors.md) such as "forbidden" or "token-unavailable", the verdict's
 * code (such as "digest-mismatch") when a response is refused, or
 * "unreachable" when the socket cannot be used.
 */
class WssigndException extends \SoapFault
{
    /**
     * @param string $problemCode the stable code
     * @param int $status the HTTP status (0 when unreachable)
     * @param array<string,mixed> $problem the RFC 9457 problem, or the verify verdict
     */
    public function __construct(
        public readonly string $problemCode,
        string $message,
        public readonly int $status = 0,
        public readonly array $problem = [],
    ) {
        parent::__construct('Client', $message);
    }

    public function getProblemCode(): string
    {
        return $this->problemCode;
    }

    /** The daemon's request id, to find its log line, when known. */
    public function getRequestId(): ?string
    {
        return isset($this->problem['request_id']) ? (string) $this->problem['request_id'] : null;
    }
}
