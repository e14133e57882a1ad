#!/usr/bin/python3
"""The part of scripts/ceph/start.sh after ceph.conf is written, in one process.

It makes the cephx keys and keyrings, the monitor's store (monmaptool, ceph-mon --mkfs) and
starts the monitor; then, through the rados/rbd Python bindings (Debian's python3-rados and
python3-rbd, which the ceph CLI itself uses), creates OSD 0, makes and starts its memstore with
ceph-osd, waits until it is up, creates the pool and waits until its placement groups are
active, and optionally creates an image and a client with the RBD profile. One process and one
monitor session instead of a `ceph`, `rbd` or `ceph-authtool` command per step: each of those
loads Ceph's libraries (and the CLI Python) anew, 3-7 s per call under the test VM's software
emulation (docs/testing.md §6).

Usage: bootstrap.py CONF DIR FSID ADDR_VECTOR POOL AUTH [--image NAME --size BYTES
                    [--features a,b]] [--client ID]
AUTH is cephx or none. Prints one line per step with its time on stderr; exits 1 with the
reason when a step fails.
"""
import argparse
import base64
import json
import os
import struct
import subprocess
import sys
import time
import uuid

import rados
import rbd

FEATURES = {"layering": rbd.RBD_FEATURE_LAYERING, "exclusive-lock": rbd.RBD_FEATURE_EXCLUSIVE_LOCK,
            "object-map": rbd.RBD_FEATURE_OBJECT_MAP, "fast-diff": rbd.RBD_FEATURE_FAST_DIFF,
            "deep-flatten": rbd.RBD_FEATURE_DEEP_FLATTEN}
START = time.monotonic()


def log(message):
    print(f"ceph: {message} ({time.monotonic() - START:.1f} s)", file=sys.stderr, flush=True)


def fail(message):
    print(f"ceph: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def wait_for(what, seconds, probe):
    """Calls probe() until it returns something true; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            fail(f"{what}: not after {seconds} s")
        time.sleep(0.2)


def cephx_key():
    """A new cephx secret as keyrings spell it: base64 of type (AES), creation time, length, 16 bytes."""
    now = time.time()
    return base64.b64encode(struct.pack("<HIIH", 1, int(now), int(now % 1 * 1e9), 16) + os.urandom(16)).decode()


def write_private(path, text):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(text)


def run(what, argv, log_file):
    with open(log_file, "ab") as err:
        if subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err).returncode != 0:
            fail(f"{what} failed: see {log_file} and the daemon's log in its log directory")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("conf")
    p.add_argument("dir")
    p.add_argument("fsid")
    p.add_argument("addrs", help="the monitor's address vector, [v2:IP:PORT,v1:IP:PORT]")
    p.add_argument("pool")
    p.add_argument("auth", choices=["cephx", "none"])
    p.add_argument("--image")
    p.add_argument("--size", type=int)
    p.add_argument("--features")
    p.add_argument("--client")
    a = p.parse_args()
    if a.image and not a.size:
        fail("--image needs --size")
    features = None
    if a.features:
        features = 0
        for name in a.features.split(","):
            if name not in FEATURES:
                fail(f"unknown image feature '{name}': known are {', '.join(FEATURES)}")
            features |= FEATURES[name]
    mkfs_log = os.path.join(a.dir, "log", "mkfs.log")

    # The monitor's keyring holds its own key and client.admin's, which --mkfs imports.
    admin = ('[client.admin]\n\tkey = {}\n\tcaps mds = "allow *"\n\tcaps mgr = "allow *"\n'
             '\tcaps mon = "allow *"\n\tcaps osd = "allow *"\n').format(cephx_key())
    if a.auth == "cephx":
        write_private(os.path.join(a.dir, "keyring"), admin)
        write_private(os.path.join(a.dir, "mon.keyring"), f'[mon.]\n\tkey = {cephx_key()}\n\tcaps mon = "allow *"\n' + admin)
    else:
        write_private(os.path.join(a.dir, "keyring"), "")
        write_private(os.path.join(a.dir, "mon.keyring"), "")
    monmap = os.path.join(a.dir, "monmap")
    run("monmaptool", ["monmaptool", "--create", "--fsid", a.fsid, "--addv", "a", a.addrs, monmap], mkfs_log)
    run("ceph-mon --mkfs", ["ceph-mon", "-c", a.conf, "--mkfs", "-i", "a", "--monmap", monmap,
                            "--keyring", os.path.join(a.dir, "mon.keyring")], mkfs_log)
    run("starting ceph-mon", ["ceph-mon", "-c", a.conf, "-i", "a"], os.path.join(a.dir, "log", "mon.a.stderr"))
    log("mon.a made and started")

    cluster = rados.Rados(conffile=a.conf, name="client.admin")
    # An op on a pool whose placement groups are not active yet waits for them; never forever.
    cluster.conf_set("rados_osd_op_timeout", "60")
    cluster.conf_set("rados_mon_op_timeout", "30")
    cluster.conf_set("client_mount_timeout", "60")
    try:
        cluster.connect()
    except rados.Error as e:
        fail(f"cannot reach the monitor at {a.addrs}: {e}")
    log("connected to the monitor")

    def mon(cmd, inbuf=b""):
        ret, out, err = cluster.mon_command(json.dumps(cmd), inbuf, timeout=30)
        if ret != 0:
            fail(f"{cmd['prefix']}: {os.strerror(-ret)}: {err}")
        return out

    osd_uuid = str(uuid.uuid4())
    osd_key = cephx_key() if a.auth == "cephx" else None
    secret = json.dumps({"cephx_secret": osd_key}).encode() if osd_key else b""
    osd_id = json.loads(mon({"prefix": "osd new", "uuid": osd_uuid, "format": "json"}, secret))["osdid"]
    if osd_id != 0:
        fail(f"the new OSD got id {osd_id}, expected 0 (a half-made cluster in {a.dir}?)")
    mkfs = ["ceph-osd", "-c", a.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid]
    if osd_key:
        mkfs += ["--key", osd_key]
    run("ceph-osd --mkfs", mkfs, mkfs_log)
    if osd_key:
        # --mkfs --key keeps the key inside the store but writes no keyring, and the OSD needs
        # one to fetch its configuration from the monitor.
        write_private(os.path.join(a.dir, "osd.0", "keyring"), f"[osd.0]\n\tkey = {osd_key}\n")
    run("starting ceph-osd", ["ceph-osd", "-c", a.conf, "-i", "0"], os.path.join(a.dir, "log", "osd.0.stderr"))
    log("osd.0 made and started")

    def osd_up():
        osds = json.loads(mon({"prefix": "osd dump", "format": "json"}))["osds"]
        return any(o["osd"] == 0 and o["up"] == 1 for o in osds)
    wait_for("osd.0 up", 60, osd_up)
    log("osd.0 up")

    mon({"prefix": "osd pool create", "pool": a.pool, "pg_num": 8, "pgp_num": 8, "pool_type": "replicated"})
    mon({"prefix": "osd pool application enable", "pool": a.pool, "app": "rbd"})
    ioctx = cluster.open_ioctx(a.pool)

    # The pool's placement groups are active once an object lookup answers 'no such object'.
    def active():
        try:
            ioctx.stat("__probe__")
        except rados.ObjectNotFound:
            return True
        except rados.Error:
            return False
        return True
    wait_for(f"pool {a.pool} active", 60, active)
    log(f"pool {a.pool} active")

    if a.image:
        try:
            rbd.RBD().create(ioctx, a.image, a.size, old_format=False, features=features)
        except rbd.ImageExists:
            pass
        log(f"image {a.pool}/{a.image} ({a.size} bytes{', ' + a.features if a.features else ''})")

    if a.client:
        # The RBD profile includes blocklisting other clients, which a target host fencing
        # another needs (docs/operations.md §10).
        out = mon({"prefix": "auth get-or-create", "entity": f"client.{a.client}",
                   "caps": ["mon", "profile rbd", "osd", f"profile rbd pool={a.pool}"]})
        path = os.path.join(a.dir, f"ceph.client.{a.client}.keyring")
        write_private(path, out.decode())
        log(f"client.{a.client} (profile rbd on {a.pool}): {path}")

    ioctx.close()
    cluster.shutdown()


if __name__ == "__main__":
    main()
