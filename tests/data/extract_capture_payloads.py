#!/usr/bin/env python3
"""Extracts the KMS request/response byte arrays of every RequestActivation call in the shared
captures (pcap / pcapng, Ethernet, IPv4/IPv6, TCP) and writes them, with the facts of the matching
.expect.json entry, to a TSV used by tests/kms_captures.rs. Development helper, not shipped."""
import glob, json, os, struct, sys

def packets(path):
    data = open(path, 'rb').read()
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        off = 24
        while off + 16 <= len(data):
            _, _, incl, _ = struct.unpack_from('<IIII', data, off)
            yield data[off + 16: off + 16 + incl]
            off += 16 + incl
    elif magic == b'\x0a\x0d\x0d\x0a':
        off = 0
        while off + 8 <= len(data):
            btype, blen = struct.unpack_from('<II', data, off)
            if btype == 6:
                incl = struct.unpack_from('<I', data, off + 20)[0]
                yield data[off + 28: off + 28 + incl]
            off += blen
    else:
        raise SystemExit('unknown capture format ' + path)

def tcp_segments(path):
    for frame in packets(path):
        if len(frame) < 14:
            continue
        et = struct.unpack_from('>H', frame, 12)[0]
        p = frame[14:]
        if et == 0x0800:
            ihl = (p[0] & 15) * 4
            if p[9] != 6:
                continue
            src, dst = p[12:16], p[16:20]
            tot = struct.unpack_from('>H', p, 2)[0]
            t = p[ihl:tot]
        elif et == 0x86dd:
            if p[6] != 6:
                continue
            src, dst = p[8:24], p[24:40]
            t = p[40:40 + struct.unpack_from('>H', p, 4)[0]]
        else:
            continue
        sp, dp, seq = struct.unpack_from('>HHI', t, 0)
        doff = (t[12] >> 4) * 4
        yield (src, sp, dst, dp), seq, t[doff:]

def streams(path):
    s = {}
    for key, seq, payload in tcp_segments(path):
        if not payload:
            continue
        d = s.setdefault(key, {})
        d.setdefault(seq, payload)
    out = {}
    for key, segs in s.items():
        buf = b''
        for seq in sorted(segs):
            buf += segs[seq]
        out[key] = buf
    return out

def pdus(buf):
    off = 0
    while off + 16 <= len(buf):
        flen = struct.unpack_from('<H', buf, off + 8)[0]
        if flen < 16:
            break
        yield buf[off:off + flen]
        off += flen

def kms_request(pdu):
    stub = pdu[24:]
    size = struct.unpack_from('<I', stub, 0)[0]
    if struct.unpack_from('<I', stub, 4)[0] == size:
        return stub[8:8 + size]
    return stub[16:16 + size]

def kms_response(pdu):
    stub = pdu[24:]
    size, ref = struct.unpack_from('<II', stub, 0)
    if size == 0:
        return None
    if ref != 0:
        return stub[12:12 + size]
    return stub[24:24 + size]

rows = []
for exp in sorted(glob.glob('/work/shared/captures/*.expect.json')):
    e = json.load(open(exp))
    base = exp[:-len('.expect.json')]
    cap = base + '.pcap' if os.path.exists(base + '.pcap') else base + '.pcapng'
    st = streams(cap)
    calls = []  # (conn key, call_id, req, resp)
    for key, buf in st.items():
        if key[3] != 1688:
            continue
        rev = (key[2], key[3], key[0], key[1])
        resps = {}
        for p in pdus(st.get(rev, b'')):
            if p[2] == 2:
                resps[struct.unpack_from('<I', p, 12)[0]] = kms_response(p)
        for p in pdus(buf):
            if p[2] == 0:
                cid = struct.unpack_from('<I', p, 12)[0]
                calls.append((key[1], cid, kms_request(p), resps.get(cid)))
    for x in e['kms_exchanges']:
        cport = int(x['client'].rsplit(':', 1)[1])
        m = [c for c in calls if c[0] == cport and c[1] == x['rpc_call_id']]
        assert len(m) == 1, (exp, x['index'], len(m))
        _, _, q, a = m[0]
        rq, rs = x['request'], x['response']
        rows.append([
            os.path.basename(base), str(x['index']), x['protocol_version'], q.hex(), a.hex(),
            rq['app_id']['guid'], rq['sku_id']['guid'], rq['kms_counted_id']['guid'],
            rq['cmid'], rq['previous_cmid'], rq['workstation_name'],
            str(rq['required_client_count']), str(rq['is_vm']).lower(),
            str(rq['license_status']['code']), str(rq['binding_expiration_minutes']),
            rq['client_time_utc'].replace(' ', 'T') + 'Z',
            rs['host_epid'], rs.get('host_hwid', ''), str(rs['current_count']),
            str(rs['activation_interval_minutes']), str(rs['renewal_interval_minutes']),
            x.get('host_impl', ''), x.get('client_impl', ''),
        ])
cols = ('scenario index version request response app_id sku_id kms_id cmid previous_cmid '
        'workstation required_count is_vm license_status binding_expiration client_time epid hwid '
        'current_count activation_interval renewal_interval host_impl client_impl').split()
out = sys.argv[1]
with open(out, 'w') as f:
    f.write('# ' + '\t'.join(cols) + '\n')
    for r in rows:
        assert all('\t' not in c and '\n' not in c for c in r)
        f.write('\t'.join(r) + '\n')
print(len(rows), 'calls written to', out)
