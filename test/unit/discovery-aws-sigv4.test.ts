/**
 * SigV4 against AWS's own published vectors — the Signature Version 4 test suite
 * (aws-sig-v4-test-suite: AKIDEXAMPLE, us-east-1, service "service", 2015-08-30T12:36:00Z) and
 * the S3 "GET Object" example of the SigV4 documentation — so the signer is proven against
 * AWS, not only against our own emulated EC2 (which checks signatures with its own code).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { amzDate, canonicalQuery, signV4 } from '../../src/core/discovery/providers/cloud/sigv4.ts';

const SUITE_CREDENTIALS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
};
const SUITE_NOW = Date.UTC(2015, 7, 30, 12, 36, 0);
const SUITE_SCOPE = 'Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

const SUITE: Array<{
  name: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  signedHeaders: string;
  signature: string;
}> = [
  {
    name: 'get-vanilla',
    method: 'GET',
    url: 'https://example.amazonaws.com/',
    headers: {},
    signedHeaders: 'host;x-amz-date',
    signature: '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
  },
  {
    name: 'get-vanilla-query-order-key-case',
    method: 'GET',
    url: 'https://example.amazonaws.com/?Param2=value2&Param1=value1',
    headers: {},
    signedHeaders: 'host;x-amz-date',
    signature: 'b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
  },
  {
    name: 'get-unreserved',
    method: 'GET',
    url: 'https://example.amazonaws.com/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
    headers: {},
    signedHeaders: 'host;x-amz-date',
    signature: '07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f',
  },
  {
    name: 'post-vanilla',
    method: 'POST',
    url: 'https://example.amazonaws.com/',
    headers: {},
    signedHeaders: 'host;x-amz-date',
    signature: '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b',
  },
  {
    name: 'post-header-value-case',
    method: 'POST',
    url: 'https://example.amazonaws.com/',
    headers: { 'My-Header1': 'VALUE1' },
    signedHeaders: 'host;my-header1;x-amz-date',
    signature: 'cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d',
  },
  {
    name: 'get-header-value-trim',
    method: 'GET',
    url: 'https://example.amazonaws.com/',
    headers: { 'My-Header1': ' value1', 'My-Header2': '"a   b   c"' },
    signedHeaders: 'host;my-header1;my-header2;x-amz-date',
    signature: 'acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736',
  },
];

describe('SigV4: the AWS Signature Version 4 test suite', () => {
  for (const vector of SUITE) {
    test(vector.name, () => {
      const signed = signV4(
        {
          method: vector.method,
          url: new URL(vector.url),
          headers: vector.headers,
          body: '',
          region: 'us-east-1',
          service: 'service',
          nowMs: SUITE_NOW,
        },
        SUITE_CREDENTIALS,
      );
      assert.equal(
        signed.headers['authorization'],
        `AWS4-HMAC-SHA256 ${SUITE_SCOPE}, SignedHeaders=${vector.signedHeaders}, Signature=${vector.signature}`,
      );
      assert.equal(signed.headers['x-amz-date'], '20150830T123600Z');
    });
  }

  test('get-vanilla: canonical request and string to sign as the suite prints them', () => {
    const signed = signV4(
      {
        method: 'GET',
        url: new URL('https://example.amazonaws.com/'),
        headers: {},
        body: '',
        region: 'us-east-1',
        service: 'service',
        nowMs: SUITE_NOW,
      },
      SUITE_CREDENTIALS,
    );
    assert.equal(
      signed.canonicalRequest,
      `GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n${EMPTY_SHA256}`,
    );
    assert.equal(
      signed.stringToSign,
      'AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63',
    );
  });

  test('the SigV4 documentation example: S3 GET Object with a Range header', () => {
    const signed = signV4(
      {
        method: 'GET',
        url: new URL('https://examplebucket.s3.amazonaws.com/test.txt'),
        headers: { Range: 'bytes=0-9', 'x-amz-content-sha256': EMPTY_SHA256 },
        body: '',
        region: 'us-east-1',
        service: 's3',
        nowMs: Date.UTC(2013, 4, 24, 0, 0, 0),
      },
      {
        accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      },
    );
    assert.equal(
      signed.headers['authorization'],
      'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
    );
  });

  test('a session token is sent and signed as x-amz-security-token', () => {
    const signed = signV4(
      {
        method: 'GET',
        url: new URL('https://ec2.us-east-1.amazonaws.com/?Action=DescribeInstances'),
        headers: {},
        body: '',
        region: 'us-east-1',
        service: 'ec2',
        nowMs: SUITE_NOW,
      },
      { ...SUITE_CREDENTIALS, sessionToken: 'token+/=' },
    );
    assert.equal(signed.headers['x-amz-security-token'], 'token+/=');
    assert.match(
      signed.headers['authorization']!,
      /SignedHeaders=host;x-amz-date;x-amz-security-token,/,
    );
  });

  test('query encoding: RFC 3986, spaces as %20, sorted by encoded key', () => {
    assert.equal(
      canonicalQuery(new URL('https://h/?Filter.1.Value.1=a%20b&Filter.1.Name=tag%3Arole&A=*')),
      'A=%2A&Filter.1.Name=tag%3Arole&Filter.1.Value.1=a%20b',
    );
    assert.equal(amzDate(SUITE_NOW), '20150830T123600Z');
  });
});
