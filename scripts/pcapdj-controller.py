#!/usr/bin/env python3
"""Authorize every file a dispatcher announces, in pcapdj's documented style.

pcapdj (and shardcap with --auth redis) pushes the next file it wants to read to PREFIX_NEXT and
waits until the file is authorized in PREFIX_AUTH. This loop pops each announced name and adds it
to the PREFIX_AUTH set (current pcapdj), or with --set-form sets PREFIX_AUTH to the name (older
pcapdj and its published example). Do the work that must come first (free disk, deduplicate)
where the comment says so.

    pcapdj-controller.py --redis redis://127.0.0.1:6379 --until-done
"""
import argparse
import sys
import time

import redis

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis URL")
parser.add_argument(
    "--prefix",
    default="PCAPDJ",
    help="key prefix; with shardcap --redis-instance NAME use PREFIX_NAME",
)
parser.add_argument("--set-form", action="store_true", help="authorize with SET (older pcapdj)")
parser.add_argument(
    "--until-done", action="store_true", help="exit once the dispatcher sets PREFIX_STATE to DONE"
)
args = parser.parse_args()

red = redis.Redis.from_url(args.redis)
down = False
seen_running = False
while True:
    try:
        # Check if some data is ready to be processed
        pcapname = red.lpop(args.prefix + "_NEXT")
        if pcapname is not None:
            # Free disk space, remove duplicates, ... here, before the file is authorized.
            print("Authorized file", pcapname.decode(errors="replace"), flush=True)
            if args.set_form:
                red.set(args.prefix + "_AUTH", pcapname)
            else:
                red.sadd(args.prefix + "_AUTH", pcapname)
            seen_running = True
            continue
        if args.until_done:
            done = red.get(args.prefix + "_STATE") == b"DONE"
            if done and seen_running:
                break
            seen_running = seen_running or not done
        if down:
            print("Redis is back", file=sys.stderr, flush=True)
            down = False
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
        if not down:
            print("Redis unreachable (%s); retrying" % e, file=sys.stderr, flush=True)
            down = True
        time.sleep(0.5)
        continue
    time.sleep(0.1)
