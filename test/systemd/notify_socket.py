# A stand-in for systemd's notification socket: binds a Unix datagram socket (what NOTIFY_SOCKET
# names) and prints every message it receives as one JSON line with its arrival time.
import json
import socket
import sys
import time

path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
print(json.dumps({"ready": True}), flush=True)
while True:
    data = sock.recv(65536)
    print(json.dumps({"t": time.time() * 1000, "vars": data.decode().split("\n")}), flush=True)
