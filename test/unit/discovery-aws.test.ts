/**
 * The pure parts of provider=aws: the small XML reader (bounded, no DTDs), EC2's error
 * document, DescribeInstances pages, and the shared-file INI reader.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ec2ErrorMessage, parseDescribeInstances } from '../../src/core/discovery/providers/aws.ts';
import { parseIni } from '../../src/core/discovery/providers/aws-credentials.ts';
import {
  parseXml,
  textAt,
  XML_DEPTH_MAX,
  XmlError,
} from '../../src/core/discovery/providers/cloud/xml.ts';

describe('xml reader', () => {
  test('entities, character references, CDATA, comments, attributes with >', () => {
    const doc = parseXml(
      '<?xml version="1.0"?><!-- c --><a x="1>2"><b>&lt;x&gt; &amp; &#65;&#x42;</b><c><![CDATA[<raw>]]></c><d/></a>',
    );
    assert.equal(doc.name, 'a');
    assert.equal(textAt(doc, 'b'), '<x> & AB');
    assert.equal(textAt(doc, 'c'), '<raw>');
    assert.equal(textAt(doc, 'd'), undefined);
  });

  test('refuses DTDs, unknown entities, mismatched and unclosed tags, two roots', () => {
    for (const bad of [
      '<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
      '<a>&nbsp;</a>',
      '<a><b></a></b>',
      '<a><b></b>',
      '<a/><b/>',
    ]) {
      assert.throws(() => parseXml(bad), XmlError, bad);
    }
  });

  test('nesting is bounded', () => {
    const deep = `${'<a>'.repeat(XML_DEPTH_MAX + 2)}${'</a>'.repeat(XML_DEPTH_MAX + 2)}`;
    assert.throws(() => parseXml(deep), /nested deeper/);
  });
});

describe('EC2 documents', () => {
  test('error document: Code and Message', () => {
    assert.equal(
      ec2ErrorMessage(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>x</RequestID></Response>',
      ),
      'UnauthorizedOperation: You are not authorized to perform this operation.',
    );
    assert.equal(ec2ErrorMessage('Service Unavailable\nmore'), 'Service Unavailable');
  });

  test('DescribeInstances: instances across reservations, the chosen address, nextToken', () => {
    const doc =
      parseXml(`<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
      <requestId>r</requestId>
      <reservationSet>
        <item><reservationId>r-1</reservationId><instancesSet>
          <item><instanceId>i-1</instanceId><privateIpAddress>127.0.0.41</privateIpAddress>
            <placement><availabilityZone>eu-west-1a</availabilityZone></placement>
            <tagSet><item><key>Name</key><value>db &amp; co</value></item></tagSet></item>
          <item><instanceId>i-2</instanceId></item>
        </instancesSet></item>
        <item><reservationId>r-2</reservationId><instancesSet>
          <item><instanceId>i-3</instanceId><privateIpAddress>127.0.0.43</privateIpAddress></item>
        </instancesSet></item>
      </reservationSet>
      <nextToken>page-2</nextToken>
    </DescribeInstancesResponse>`);
    const page = parseDescribeInstances(doc, {
      addressType: 'private_v4',
      port: 7400,
      region: 'eu-west-1',
    });
    assert.deepEqual(
      page.nodes.map((n) => n.address),
      ['127.0.0.41:7400', '127.0.0.43:7400'],
    );
    assert.equal(page.nodes[0]!.meta['name'], 'db & co');
    assert.equal(page.nodes[0]!.meta['zone'], 'eu-west-1a');
    assert.equal(page.skipped, 1);
    assert.equal(page.nextToken, 'page-2');
  });
});

test('INI: sections, comments, keys case-folded, values trimmed', () => {
  const ini = parseIni(
    '# top\n[default]\nAWS_Access_Key_Id = A\n; c\n[profile ops]\nregion=eu-west-1 \n',
  );
  assert.equal(ini.get('default')?.get('aws_access_key_id'), 'A');
  assert.equal(ini.get('profile ops')?.get('region'), 'eu-west-1');
});
