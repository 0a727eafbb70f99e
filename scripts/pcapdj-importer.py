#!/usr/bin/env python3
"""Queue the capture files of a directory for a dispatcher, in pcapdj's documented style.

Every file of ROOT whose name ends in "pcap" (or "pcap.gz") is pushed with RPUSH to
PREFIX_IN_QUEUE, sorted by name, as pcapdj's README does. shardcap reads the same queue with
`shardcap run --auth redis`; `shardcap ctl enqueue` does this job ordered by first packet time
instead of by name, and recurses into directories.

    pcapdj-importer.py /data/pcaps --redis redis://127.0.0.1:6379
"""
import argparse
import os

import redis

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("root", help="directory of capture files")
parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis URL")
parser.add_argument("--prefix", default="PCAPDJ", help="key prefix (shardcap --redis-prefix)")
args = parser.parse_args()

red = redis.Redis.from_url(args.redis)
root = os.path.abspath(args.root)
files = os.listdir(root)
files.sort()
for rf in files:
    f = root + "/" + rf
    if f.endswith("pcap") or f.endswith("pcap.gz"):
        red.rpush(args.prefix + "_IN_QUEUE", f)
        print("Queued", f)
