# Asks SERVER (UDP port 53) for NAME's A records and prints the answer as one JSON line.
#   python3 dns_query.py SERVER NAME
import json
import socket
import struct
import sys

server, name = sys.argv[1], sys.argv[2]
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
query = struct.pack(">HHHHHH", 0x4657, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(query, (server, 53))
r = s.recv(4096)
rcode, count = r[3] & 0xF, struct.unpack(">H", r[6:8])[0]
i = 12 + len(qname) + 4
addresses = []
for _ in range(count):
    if r[i] & 0xC0 == 0xC0:
        i += 2
    else:
        while r[i]:
            i += r[i] + 1
        i += 1
    rtype, _cls, _ttl, length = struct.unpack(">HHIH", r[i : i + 10])
    i += 10
    if rtype == 1:
        addresses.append(socket.inet_ntoa(r[i : i + length]))
    i += length
print(json.dumps({"rcode": rcode, "addresses": addresses}))
