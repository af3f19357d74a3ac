<?php

declare(strict_types=1);

namespace Wssignd;

/**
 * A SoapClient whose requests are signed, and responses verified, by
 * wssignd over its Unix socket: the signing key stays in the HSM.
 *
 *     $client = new WssigndSoapClient($wsdl, [], ['verify_profile' => 'partner']);
 *     $client->greet(['name' => 'Ada']);
 *
 * __doRequest sends each envelope to POST /v1/soap/sign?profile=..., the
 * signed envelope to the service, and the response to POST
 * /v1/soap/verify?profile=...; a refusal or an invalid response throws a
 * WssigndException. Envelopes are never logged.
 */
class WssigndSoapClient extends \SoapClient
{
    public const DEFAULT_SOCKET = '/run/wssignd/wssignd.sock';

    private string $socket;
    private ?string $signProfile;
    private ?string $verifyProfile;
    private int $timeout;

    /**
     * @param string|null $wsdl as for SoapClient
     * @param array<string,mixed> $options as for SoapClient
     * @param array{socket?: string, sign_profile?: ?string, verify_profile?: ?string, timeout?: int} $wssignd
     *        socket: default $WSSIGN_SOCKET, else /run/wssignd/wssignd.sock;
     *        sign_profile (default "default") and verify_profile (default
     *        "default"): null skips signing or verification; timeout: seconds
     */
    public function __construct(?string $wsdl, array $options = [], array $wssignd = [])
    {
        $this->socket = $wssignd['socket'] ?? (getenv('WSSIGN_SOCKET') ?: self::DEFAULT_SOCKET);
        $this->signProfile = array_key_exists('sign_profile', $wssignd) ? $wssignd['sign_profile'] : 'default';
        $this->verifyProfile = array_key_exists('verify_profile', $wssignd) ? $wssignd['verify_profile'] : 'default';
        $this->timeout = $wssignd['timeout'] ?? 30;
        parent::__construct($wsdl, $options);
    }

    public function __doRequest(string $request, string $location, string $action, int $version, bool $oneWay = false): ?string
    {
        $contentType = $version === SOAP_1_2 ? 'application/soap+xml; charset=utf-8' : 'text/xml; charset=utf-8';
        if ($this->signProfile !== null) {
            $request = $this->call('/v1/soap/sign', $this->signProfile, $request, $contentType);
        }
        $response = parent::__doRequest($request, $location, $action, $version, $oneWay);
        if ($this->verifyProfile !== null && $response !== null && $response !== '') {
            $verdict = json_decode($this->call('/v1/soap/verify', $this->verifyProfile, $response, $contentType), true);
            if (!is_array($verdict) || ($verdict['valid'] ?? false) !== true) {
                $code = is_array($verdict) ? (string) ($verdict['code'] ?? 'invalid') : 'invalid';
                $detail = is_array($verdict) ? (string) ($verdict['detail'] ?? '') : '';
                throw new WssigndException($code, "response signature refused: $detail ($code)", 200, is_array($verdict) ? $verdict : []);
            }
        }
        return $response;
    }

    /** POSTs an envelope to the daemon and returns the body of a 2xx answer. */
    private function call(string $route, string $profile, string $body, string $contentType): string
    {
        $ch = curl_init('http://localhost' . $route . '?' . http_build_query(['profile' => $profile]));
        curl_setopt_array($ch, [
            CURLOPT_UNIX_SOCKET_PATH => $this->socket,
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => $body,
            CURLOPT_HTTPHEADER => ['Content-Type: ' . $contentType, 'Expect:'],
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT => $this->timeout,
        ]);
        $out = curl_exec($ch);
        $status = (int) curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        $error = curl_error($ch);
        curl_close($ch);
        if ($out === false) {
            throw new WssigndException('unreachable', "wssignd at {$this->socket}: $error");
        }
        if ($status >= 400) {
            $problem = json_decode($out, true);
            $problem = is_array($problem) ? $problem : [];
            $code = (string) ($problem['code'] ?? "http-$status");
            throw new WssigndException($code, sprintf(
                'wssignd: %s: %s (%s, request %s)',
                $problem['title'] ?? "HTTP $status", $problem['detail'] ?? '', $code, $problem['request_id'] ?? '-'
            ), $status, $problem);
        }
        return $out;
    }
}
