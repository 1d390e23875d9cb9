#!/usr/bin/python3
"""Seeded generator of Linux log excerpts paired with short explanations.

Each example is one log excerpt (3-13 lines, one timestamp style) holding zero, one or two
incidents of the kinds in INCIDENT_KINDS plus routine noise lines, and an explanation in the DeepSeek-R1
chat format: the user turn holds the excerpt, the assistant turn a brief reasoning inside
<think>...</think> and then a 2-4 sentence answer (what happened, how severe, what to check).

The held-out split ("test") draws hostnames, disks, NICs, process names, units and kernel
modules from pools the training split never uses, and half of it uses pairs of incident kinds
that never occur together in training (HELDOUT_PAIRS).

Usage: gen_logs.py --out DIR [--train N] [--test N] [--seed S]
Writes DIR/train.jsonl, DIR/test.jsonl (one example a line) and DIR/keywords.json.
"""
import argparse
import itertools
import json
import os
import random

import regex

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
SYSTEM_PROMPT = ("You explain Linux log excerpts: say what happened, how severe it is and what to "
                 "check.")

# Incident kinds. KEYWORDS[kind] is a lower-case word every correct answer about that kind
# contains (the answers below always include it); "healthy" is for excerpts with no incident.
KEYWORDS = {
    "kernel_oops": "oops",
    "kernel_warning": "warning",
    "soft_lockup": "lockup",
    "hung_task": "hung",
    "oom_kill": "out of memory",
    "segfault": "crash",
    "fs_error": "filesystem",
    "disk_io_error": "disk",
    "nvme_error": "nvme",
    "usb_error": "usb",
    "nic_link": "link",
    "tx_timeout": "transmit",
    "thermal": "temperature",
    "mce": "hardware error",
    "unit_failed": "failed",
    "apparmor_denied": "apparmor",
    "selinux_denied": "selinux",
    "healthy": "normal",
}
INCIDENT_KINDS = [k for k in KEYWORDS if k != "healthy"]
SEVERITY_RANK = {"none": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

# Pairs of kinds that occur together only in the held-out split.
HELDOUT_PAIRS = {
    frozenset(p) for p in [
        ("oom_kill", "hung_task"), ("disk_io_error", "unit_failed"), ("nvme_error", "thermal"),
        ("segfault", "apparmor_denied"), ("nic_link", "kernel_warning"), ("mce", "soft_lockup"),
        ("usb_error", "fs_error"), ("tx_timeout", "oom_kill"), ("selinux_denied", "unit_failed"),
        ("kernel_oops", "disk_io_error"), ("thermal", "segfault"), ("fs_error", "nic_link"),
    ]
}

# Field values: (training pool, held-out pool).
POOLS = {
    "host": (["web01", "web02", "web-fra-3", "db-prod-1", "db-replica-2", "build-07", "nas",
              "pve2", "k8s-node-3", "k8s-node-11", "gw-edge", "laptop-ana", "ci-runner-12",
              "mail", "backup01", "cache-a", "app-lon-4", "storage-9", "devbox", "hv03",
              "monitor", "ldap1", "vpn-gw", "media-pc", "rpi-garage", "log-collector",
              "jump-host", "git", "erp-01", "kiosk-17"],
             ["atlas", "mercury-db", "edge-ams-2", "render-05", "orion", "files-hq",
              "worker-b7", "sandbox"]),
    "disk": (["sda", "sdb", "sdc", "sdd", "sdh", "sdj", "sdk", "vda", "vdb", "xvdf"], ["sde", "sdf", "sdg"]),
    "nvme": (["nvme0", "nvme1", "nvme4", "nvme5", "nvme6"], ["nvme2", "nvme3"]),
    "nic": ([("eno1", "e1000e", "0000:00:1f.6"), ("enp3s0", "igb", "0000:03:00.0"),
             ("ens18", "virtio_net", "virtio0"), ("eth0", "r8169", "0000:02:00.0"),
             ("enp0s31f6", "e1000e", "0000:00:1f.6"), ("ens1f0", "mlx5_core", "0000:41:00.0"),
             ("enp65s0f0", "ixgbe", "0000:41:00.0")],
            [("enp5s0f1", "i40e", "0000:05:00.1"), ("eth2", "tg3", "0000:04:00.0"),
             ("ens4", "bnxt_en", "0000:81:00.0")]),
    "proc": (["java", "python3", "node", "chrome", "firefox", "postgres", "mysqld",
              "php-fpm8.2", "ffmpeg", "gnome-shell", "Xorg", "dockerd", "containerd",
              "qemu-system-x86", "clickhouse-server", "elasticsearch", "nginx", "ruby",
              "dotnet", "influxd"],
             ["redis-server", "mongod", "gunicorn", "rustc", "vlc", "beam.smp"]),
    "unit": ([("nginx", "A high performance web server and a reverse proxy server"),
              ("postgresql@15-main", "PostgreSQL Cluster 15-main"),
              ("docker", "Docker Application Container Engine"),
              ("ssh", "OpenBSD Secure Shell server"), ("apache2", "The Apache HTTP Server"),
              ("php8.2-fpm", "The PHP 8.2 FastCGI Process Manager"),
              ("mariadb", "MariaDB 10.11.6 database server"),
              ("grafana-server", "Grafana instance"),
              ("prometheus", "Monitoring system and time series database"),
              ("kubelet", "kubelet: The Kubernetes Node Agent"),
              ("containerd", "containerd container runtime"),
              ("named", "BIND Domain Name Server"), ("smbd", "Samba SMB Daemon"),
              ("backup-sync", "Nightly backup sync"), ("certbot", "Certbot")],
             [("redis-server", "Advanced key-value store"),
              ("haproxy", "HAProxy Load Balancer"), ("jenkins", "Jenkins Continuous Integration Server"),
              ("nfs-server", "NFS server and services"),
              ("rabbitmq-server", "RabbitMQ broker")]),
    "module": ([("i915", ["intel_atomic_commit_tail", "intel_modeset_verify_crtc", "gen8_ggtt_insert_entries"]),
                ("amdgpu", ["amdgpu_dm_atomic_commit_tail", "amdgpu_job_timedout", "dc_link_detect"]),
                ("iwlwifi", ["iwl_trans_pcie_start_fw", "iwl_mvm_rx_tx_cmd", "iwl_pcie_rx_handle"]),
                ("btrfs", ["btrfs_commit_transaction", "__btrfs_free_extent", "btrfs_run_delayed_refs"]),
                ("zfs", ["zio_wait", "txg_sync_thread", "spa_sync"]),
                ("mlx5_core", ["mlx5_cmd_exec", "mlx5e_napi_poll", "mlx5_eq_comp_int"]),
                ("r8169", ["rtl8169_poll", "rtl_tx", "rtl8169_start_xmit"]),
                ("xhci_hcd", ["xhci_irq", "xhci_handle_event", "xhci_urb_enqueue"]),
                ("snd_hda_intel", ["azx_interrupt", "snd_hda_codec_read", "azx_runtime_resume"]),
                ("nvidia", ["_nv011159rm", "nvidia_ioctl", "os_acquire_spinlock"])],
               [("ath10k_pci", ["ath10k_pci_hif_tx_sg", "ath10k_htt_txrx_compl_task", "ath10k_ce_per_engine_service"]),
                ("nfsd", ["nfsd4_proc_compound", "nfsd_dispatch", "svc_process"]),
                ("bluetooth", ["hci_rx_work", "hci_conn_del", "l2cap_conn_del"])]),
    "user": (["alice", "bob", "deploy", "root", "www-data", "jenkins", "ana", "backup"],
             ["mallory", "svc-etl", "tomas"]),
    "fs": (["ext4", "xfs", "btrfs"], ["ext4", "xfs", "btrfs"]),
}

_ROLES = ["web", "db", "app", "api", "cache", "node", "srv", "build", "store", "mon", "lb", "proxy",
          "queue", "ml", "gpu", "fw", "dev", "test", "vm", "ci", "dns", "nfs", "kafka", "etl"]
_SITES = ["fra", "lon", "nyc", "sgp", "par", "tok", "syd", "dub", "waw", "mad", "osl", "chi"]
_THINGS = ["metrics", "log", "backup", "data", "auth", "mail", "media", "search", "stream", "billing",
           "report", "image", "event", "ticket", "geo", "chat", "sensor", "invoice"]
_ROLE_SUFFIX = ["worker", "agent", "collector", "indexer", "scheduler", "exporter", "server",
                "gateway", "sync", "proxy", "api", "relay"]
_NAMES = ["lena", "omar", "kim", "ravi", "ines", "paul", "mia", "jonas", "sara", "li", "nadia",
          "felix", "ops", "ci", "app", "svc"]


def _synthetic_host(r):
    parts = [r.choice(_ROLES)]
    if r.random() < 0.4:
        parts.append(r.choice(_SITES))
    name = "-".join(parts)
    return name + r.choice(["", "-", ""]) + ("%02d" % r.randint(1, 40) if r.random() < 0.5 else str(r.randint(1, 9)))


def _synthetic_proc(r):
    t, s = r.choice(_THINGS), r.choice(_ROLE_SUFFIX)
    return r.choice(["%s-%s" % (t, s), "%s%s" % (t, s[0]), "%sd" % t, "%s_%s" % (t, s)])


def _synthetic_unit(r):
    t, s = r.choice(_THINGS), r.choice(_ROLE_SUFFIX)
    return ("%s-%s" % (t, s), "%s %s" % (t.capitalize(), s))


_SYL = ["ax", "bo", "cri", "da", "el", "fen", "gu", "hy", "io", "ka", "lu", "mo", "nix", "or",
        "pa", "qu", "ru", "sa", "tor", "ul", "vi", "wen", "xe", "zo"]
_VERBS = ["handle", "submit", "reset", "poll", "probe", "flush", "queue", "update", "map", "free"]
_NOUNS = ["irq", "ring", "work", "buf", "desc", "port", "ctx", "state", "page", "cmd"]


def _synthetic_module(r):
    name = r.choice(["", "", "snd_", "drm_", "net_", "hid_"]) + "".join(r.choice(_SYL) for _ in range(r.randint(2, 3)))
    if r.random() < 0.3:
        name += str(r.randint(1, 99))
    funcs = ["%s_%s_%s" % (name.split("_")[-1], r.choice(_VERBS), r.choice(_NOUNS)) for _ in range(3)]
    return (name, funcs)


SYNTHETIC = {
    "module": _synthetic_module,
    "host": _synthetic_host,
    "proc": _synthetic_proc,
    "unit": _synthetic_unit,
    "user": lambda r: r.choice(_NAMES) + (str(r.randint(1, 99)) if r.random() < 0.3 else ""),
}

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
KERNELS = ["6.1.0-18-amd64 #1 Debian 6.1.76-1", "6.8.0-45-generic #45-Ubuntu",
           "5.15.0-105-generic #115-Ubuntu", "6.6.30-1-lts #1 SMP PREEMPT_DYNAMIC",
           "5.14.0-427.el9.x86_64 #1", "6.10.11-200.fc40.x86_64 #1"]


class Ctx:
    """Per-example choices: the random source, the split's value pools, and shared devices."""

    def __init__(self, rng, split):
        self.rng = rng
        self.held = split == "test"
        self.memo = {}

    def pick(self, pool):
        values = POOLS[pool][1 if self.held else 0]
        if not self.held and pool in SYNTHETIC and self.rng.random() < 0.5:
            # Half the training names are made up on the spot, so that the model learns to
            # copy names from the excerpt rather than memorise a short list.
            held_out = POOLS[pool][1]
            while True:
                v = SYNTHETIC[pool](self.rng)
                if v not in held_out and (not isinstance(v, tuple) or v[0] not in [h[0] for h in held_out]):
                    return v
        return self.rng.choice(values)

    def shared(self, pool):
        # One disk/NIC/... per example, so that related incidents name the same device.
        if pool not in self.memo:
            self.memo[pool] = self.pick(pool)
        return self.memo[pool]

    def hexaddr(self, digits=16, kernel=True):
        r = self.rng
        if kernel:
            return "ffff" + "".join(r.choice("0123456789abcdef") for _ in range(digits - 4))
        return "".join(r.choice("0123456789abcdef") for _ in range(digits))

    def off(self):
        r = self.rng
        size = r.choice([0x40, 0x80, 0xb0, 0x120, 0x1f0, 0x2a0, 0x3c0, 0x600])
        return "+0x%x/0x%x" % (r.randrange(4, size), size)

    def pid(self):
        return self.rng.randint(300, 99999)


def L(dt, src, msg):
    """One log line: dt seconds after the incident start, source 'kernel' or (comm, pid)."""
    return (dt, src, msg)


def trace(ctx, funcs, n):
    frames = funcs[:n]
    return [" %s%s" % (f, ctx.off()) for f in frames]


# Each incident generator returns (lines, facts) where facts feed the explanation.

def ev_kernel_oops(ctx):
    r = ctx.rng
    mod, funcs = ctx.pick("module")
    pid = ctx.pid()
    comm = r.choice(["kworker/%d:%d" % (r.randint(0, 15), r.randint(0, 3)), "systemd-udevd",
                     ctx.pick("proc"), "irq/%d-%s" % (r.randint(30, 150), mod)])
    what = r.choice([
        ("BUG: kernel NULL pointer dereference, address: %016x" % r.choice([0, 8, 0x10, 0x28, 0x1a0]), "a NULL pointer dereference"),
        ("BUG: unable to handle page fault for address: %s" % ctx.hexaddr(), "a bad page fault"),
        ("general protection fault, probably for non-canonical address 0x%s: 0000 [#1] SMP PTI" % ctx.hexaddr(kernel=False), "a general protection fault"),
    ])
    cpu = r.randint(0, 31)
    lines = [L(0, "kernel", what[0])]
    if not what[0].startswith("general"):
        lines.append(L(0, "kernel", "Oops: %04d [#1] PREEMPT SMP NOPTI" % r.choice([0, 2])))
    lines.append(L(0, "kernel", "CPU: %d PID: %d Comm: %s Tainted: G %s %s" % (
        cpu, pid, comm, r.choice(["   O", "  W", "     "]).strip() or "", r.choice(KERNELS))))
    lines.append(L(0, "kernel", "RIP: 0010:%s%s [%s]" % (funcs[0], ctx.off(), mod)))
    lines.append(L(0, "kernel", "Call Trace:"))
    for t in trace(ctx, funcs[1:], r.randint(1, 2)):
        lines.append(L(0, "kernel", t + " [%s]" % mod))
    facts = dict(mod=mod, func=funcs[0], comm=comm, cause=what[1])
    return lines, facts


def ev_kernel_warning(ctx):
    r = ctx.rng
    mod, funcs = ctx.pick("module")
    pid = ctx.pid()
    path = {"i915": "drivers/gpu/drm/i915/display/intel_display.c",
            "amdgpu": "drivers/gpu/drm/amd/display/dc/core/dc_link.c",
            "iwlwifi": "drivers/net/wireless/intel/iwlwifi/pcie/trans.c",
            "btrfs": "fs/btrfs/extent-tree.c", "zfs": "module/zfs/zio.c",
            "mlx5_core": "drivers/net/ethernet/mellanox/mlx5/core/cmd.c",
            "r8169": "drivers/net/ethernet/realtek/r8169_main.c",
            "xhci_hcd": "drivers/usb/host/xhci-ring.c", "snd_hda_intel": "sound/pci/hda/hda_intel.c",
            "nvidia": "nvidia/nv.c", "ath10k_pci": "drivers/net/wireless/ath/ath10k/pci.c",
            "nfsd": "fs/nfsd/nfs4proc.c", "bluetooth": "net/bluetooth/hci_conn.c"}.get(
                mod, "drivers/%s/%s/%s_main.c" % (ctx.rng.choice(["misc", "net", "gpu", "usb", "block"]), mod, mod))
    lines = [L(0, "kernel", "------------[ cut here ]------------")] if r.random() < 0.5 else []
    lines.append(L(0, "kernel", "WARNING: CPU: %d PID: %d at %s:%d %s%s [%s]" % (
        r.randint(0, 31), pid, path, r.randint(80, 4000), funcs[0], ctx.off(), mod)))
    lines.append(L(0, "kernel", "Modules linked in: %s %s" % (mod, " ".join(
        r.sample(["nft_chain_nat", "overlay", "bridge", "stp", "llc", "kvm_intel", "kvm",
                  "nls_ascii", "loop", "fuse", "dm_crypt", "crc32c_intel"], 4)))))
    lines.append(L(0, "kernel", "RIP: 0010:%s%s [%s]" % (funcs[0], ctx.off(), mod)))
    if r.random() < 0.6:
        lines.append(L(0, "kernel", "Call Trace:"))
        for t in trace(ctx, funcs[1:], r.randint(1, 2)):
            lines.append(L(0, "kernel", t + " [%s]" % mod))
    lines.append(L(0, "kernel", "---[ end trace %s ]---" % ctx.hexaddr(16, kernel=False)))
    return lines, dict(mod=mod, func=funcs[0])


def ev_soft_lockup(ctx):
    r = ctx.rng
    comm = r.choice([ctx.pick("proc"), "kworker/u64:%d" % r.randint(0, 9), "ksoftirqd/%d" % r.randint(0, 15)])
    pid = ctx.pid()
    cpu = r.randint(0, 31)
    secs = r.choice([22, 23, 26, 48, 52, 82])
    mod, funcs = ctx.pick("module")
    lines = [L(0, "kernel", "watchdog: BUG: soft lockup - CPU#%d stuck for %ds! [%s:%d]" % (cpu, secs, comm, pid)),
             L(0, "kernel", "Modules linked in: %s kvm_intel kvm irqbypass" % mod),
             L(0, "kernel", "CPU: %d PID: %d Comm: %s Tainted: G L %s" % (cpu, pid, comm, r.choice(KERNELS))),
             L(0, "kernel", "RIP: 0010:%s%s [%s]" % (funcs[0], ctx.off(), mod))]
    if r.random() < 0.5:
        lines.append(L(secs + r.randint(4, 30), "kernel", "watchdog: BUG: soft lockup - CPU#%d stuck for %ds! [%s:%d]" % (cpu, secs * 2 + r.randint(0, 4), comm, pid)))
    return lines, dict(cpu=cpu, comm=comm, secs=secs, mod=mod, func=funcs[0])


def ev_hung_task(ctx):
    r = ctx.rng
    fs = ctx.shared("fs")
    disk = ctx.shared("disk")
    comm = r.choice([("jbd2/%s1-8" % disk, ["io_schedule", "jbd2_journal_commit_transaction", "kjournald2"]),
                     ("xfsaild/dm-%d" % r.randint(0, 3), ["xfs_log_force", "xfsaild", "kthread"]),
                     (ctx.pick("proc"), ["io_schedule", "folio_wait_bit_common", "filemap_fault"]),
                     ("btrfs-transacti", ["wait_current_trans", "btrfs_commit_transaction", "transaction_kthread"]),
                     ("kworker/u16:%d" % r.randint(0, 9), ["rwsem_down_write_slowpath", "blkdev_flush_mapping", "process_one_work"])])
    pid = ctx.pid()
    secs = r.choice([120, 122, 241, 245, 362, 483, 604])
    lines = [L(0, "kernel", "INFO: task %s:%d blocked for more than %d seconds." % (comm[0], pid, secs)),
             L(0, "kernel", "      Not tainted %s" % r.choice(KERNELS))]
    if r.random() < 0.6:
        lines.append(L(0, "kernel", "\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message."))
    lines.append(L(0, "kernel", "task:%s state:D stack:0 pid:%d ppid:%d flags:0x00004000" % (comm[0], pid, r.choice([1, 2]))))
    lines.append(L(0, "kernel", "Call Trace:"))
    lines.extend(L(0, "kernel", t) for t in trace(ctx, ["__schedule", "schedule"] + comm[1], r.randint(2, 4)))
    return lines, dict(comm=comm[0], secs=secs, fs=fs)


def ev_oom_kill(ctx):
    r = ctx.rng
    victim = ctx.pick("proc")
    vpid = ctx.pid()
    trigger = r.choice([victim, ctx.pick("proc"), "kworker/u8:3", "systemd-journal"])
    rss = r.randint(900, 30000) * 1024
    memcg = r.random() < 0.35
    unit = ctx.pick("unit")[0]
    lines = [L(0, "kernel", "%s invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=%d" % (trigger, r.choice([0, 0, 200, 900])))]
    if memcg:
        lines.append(L(0, "kernel", "memory: usage %dkB, limit %dkB, failcnt %d" % (rss + 2048, rss + 2048, r.randint(1, 900))))
        lines.append(L(0, "kernel", "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/system.slice/%s.service,task=%s,pid=%d,uid=%d" % (unit, victim, vpid, r.choice([0, 33, 1000, 998]))))
        lines.append(L(0, "kernel", "Memory cgroup out of memory: Killed process %d (%s) total-vm:%dkB, anon-rss:%dkB, file-rss:%dkB, shmem-rss:0kB" % (vpid, victim, rss * 2, rss, r.randint(0, 90000))))
    else:
        lines.append(L(0, "kernel", "Out of memory: Killed process %d (%s) total-vm:%dkB, anon-rss:%dkB, file-rss:%dkB, shmem-rss:0kB, UID:%d" % (vpid, victim, rss * 2, rss, r.randint(0, 90000), r.choice([0, 33, 1000, 998]))))
    if r.random() < 0.6:
        lines.append(L(r.random(), "kernel", "oom_reaper: reaped process %d (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB" % (vpid, victim)))
    return lines, dict(victim=victim, pid=vpid, gb=max(1, round(rss / 1048576)), memcg=memcg, unit=unit)


def ev_segfault(ctx):
    r = ctx.rng
    proc = ctx.pick("proc")
    pid = ctx.pid()
    lib = r.choice([proc, "libc.so.6", "libstdc++.so.6.0.30", "libcrypto.so.3", "libglib-2.0.so.0.7400.6"])
    ip = ctx.hexaddr(16, kernel=False)
    gp = r.random() < 0.25
    if gp:
        line = "traps: %s[%d] general protection fault ip:%s sp:%s error:0 in %s[%s+%x]" % (
            proc, pid, ip[4:], ctx.hexaddr(12, False), lib, ctx.hexaddr(12, False), r.randint(0x1000, 0x1ffff))
    else:
        line = "%s[%d]: segfault at %x ip %s sp %s error %d in %s[%s+%x]" % (
            proc, pid, r.choice([0, 8, 0x18, r.randint(0x1000, 0xfffffff)]), ip, ctx.hexaddr(16, False),
            r.choice([4, 6, 14, 15]), lib, ctx.hexaddr(12, False), r.randint(0x1000, 0x1ffff))
    lines = [L(0, "kernel", line)]
    if r.random() < 0.4:
        lines.append(L(0, "kernel", "Code: " + " ".join("%02x" % r.randint(0, 255) for _ in range(12))))
    dumped = r.random() < 0.6
    if dumped:
        lines.append(L(r.uniform(0.1, 2), ("systemd-coredump", ctx.pid()), "Process %d (%s) of user %d dumped core." % (pid, proc, r.choice([0, 1000, 33]))))
    return lines, dict(proc=proc, pid=pid, lib=lib, gp=gp, dumped=dumped)


def ev_fs_error(ctx):
    r = ctx.rng
    fs = ctx.shared("fs")
    disk = ctx.shared("disk")
    part = r.choice(["%s%d" % (disk, r.randint(1, 3)), "dm-%d" % r.randint(0, 3)])
    ino = r.randint(12, 9000000)
    comm = ctx.pick("proc")
    ro = r.random() < 0.5
    if fs == "ext4":
        lines = [L(0, "kernel", r.choice([
            "EXT4-fs error (device %s): ext4_find_entry:1463: inode #%d: comm %s: reading directory lblock 0" % (part, ino, comm),
            "EXT4-fs error (device %s): ext4_lookup:1855: inode #%d: comm %s: deleted inode referenced: %d" % (part, ino, comm, ino + 7),
            "EXT4-fs error (device %s): ext4_validate_block_bitmap:390: comm %s: bg %d: bad block bitmap checksum" % (part, comm, r.randint(1, 900)),
        ]))]
        if ro:
            lines.append(L(0, "kernel", "EXT4-fs (%s): Remounting filesystem read-only" % part))
        else:
            lines.append(L(r.uniform(1, 30), "kernel", "EXT4-fs (%s): error count since last fsck: %d" % (part, r.randint(1, 40))))
    elif fs == "xfs":
        lines = [L(0, "kernel", "XFS (%s): Metadata corruption detected at xfs_dinode_verify+0x%x/0x6a0 [xfs], inode 0x%x dinode" % (part, r.randint(0x10, 0x690), ino)),
                 L(0, "kernel", "XFS (%s): Unmount and run xfs_repair" % part)]
        if ro:
            lines.append(L(0, "kernel", "XFS (%s): Corruption of in-memory data (0x8) detected at xfs_trans_cancel+0x%x/0x170 [xfs]. Shutting down filesystem." % (part, r.randint(0x10, 0x160))))
    else:
        lines = [L(0, "kernel", "BTRFS warning (device %s): csum failed root 5 ino %d off %d csum 0x%08x expected csum 0x%08x mirror 1" % (part, ino, r.randint(0, 99999) * 4096, r.getrandbits(32), r.getrandbits(32))),
                 L(0, "kernel", "BTRFS error (device %s): bdev /dev/%s errs: wr 0, rd %d, flush 0, corrupt %d, gen 0" % (part, part, r.randint(0, 30), r.randint(1, 60)))]
        if ro:
            lines.append(L(0, "kernel", "BTRFS info (device %s): forced readonly" % part))
    return lines, dict(fs=fs, part=part, ro=ro, comm=comm)


def ev_disk_io_error(ctx):
    r = ctx.rng
    disk = ctx.shared("disk")
    port = r.randint(1, 4) if not ctx.held else r.randint(5, 8)
    host = port - 1
    sector = r.randint(2048, 3900000000)
    lines = [L(0, "kernel", "ata%d.00: exception Emask 0x0 SAct 0x%x SErr 0x0 action 0x0" % (port, r.getrandbits(16))),
             L(0, "kernel", "ata%d.00: failed command: %s" % (port, r.choice(["READ FPDMA QUEUED", "WRITE FPDMA QUEUED"]))),
             L(0, "kernel", "ata%d.00: status: { DRDY ERR }" % port),
             L(0, "kernel", "ata%d.00: error: { UNC }" % port)]
    r.shuffle(lines[2:])
    if r.random() < 0.5:
        lines = lines[:2] + lines[3:]
    if r.random() < 0.5:
        lines.append(L(r.uniform(0, 1), "kernel", "ata%d: hard resetting link" % port))
    lines.append(L(r.uniform(1, 3), "kernel", "sd %d:0:0:0: [%s] tag#%d Sense Key : Medium Error [current]" % (host, disk, r.randint(0, 31))))
    lines.append(L(r.uniform(3, 4), "kernel", "I/O error, dev %s, sector %d op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0" % (disk, sector)))
    return lines, dict(disk=disk, port=port, sector=sector)


def ev_nvme_error(ctx):
    r = ctx.rng
    dev = ctx.pick("nvme")
    cmd = r.randint(1, 1023)
    q = r.randint(1, 16)
    variant = r.randrange(3)
    if variant == 0:
        lines = [L(0, "kernel", "nvme %s: I/O %d QID %d timeout, aborting" % (dev, cmd, q)),
                 L(30, "kernel", "nvme %s: I/O %d QID %d timeout, reset controller" % (dev, cmd, q)),
                 L(31, "kernel", "nvme %s: %d/0/0 default/read/poll queues" % (dev, r.choice([4, 8, 16])))]
        gone = False
    elif variant == 1:
        lines = [L(0, "kernel", "nvme %s: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff" % dev),
                 L(0, "kernel", "nvme %s: Does your device have a faulty power saving mode enabled?" % dev),
                 L(1, "kernel", "nvme %s: Removing after probe failure status: -19" % dev),
                 L(1, "kernel", "I/O error, dev %sn1, sector %d op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0" % (dev, r.randint(2048, 900000000)))]
        gone = True
    else:
        lines = [L(0, "kernel", "nvme %s: I/O %d (Read) QID %d timeout, aborting" % (dev, cmd, q)),
                 L(0, "kernel", "nvme %s: Abort status: 0x0" % dev),
                 L(r.randint(1, 20), "kernel", "nvme %s: I/O %d QID %d timeout, completion polled" % (dev, cmd + 1, q))]
        gone = False
    return lines, dict(dev=dev, gone=gone)


def ev_usb_error(ctx):
    r = ctx.rng
    port = "%d-%d" % (r.randint(1, 4), r.randint(1, 6)) + (".%d" % r.randint(1, 4) if r.random() < 0.4 else "")
    num = r.randint(2, 40)
    variant = r.randrange(3)
    if variant == 0:
        lines = [L(0, "kernel", "usb %s: USB disconnect, device number %d" % (port, num))]
        if r.random() < 0.5:
            lines.append(L(0.1, "kernel", "sd %d:0:0:0: [%s] Synchronize Cache(10) failed: Result: hostbyte=DID_ERROR driverbyte=DRIVER_OK" % (r.randint(4, 9), ctx.shared("disk"))))
        lines.append(L(r.uniform(1, 9), "kernel", "usb %s: new high-speed USB device number %d using xhci_hcd" % (port, num + 1)))
        lines.append(L(r.uniform(10, 12), "kernel", "usb %s: USB disconnect, device number %d" % (port, num + 1)))
        what = "flapping"
    elif variant == 1:
        lines = [L(0, "kernel", "usb %s: new full-speed USB device number %d using xhci_hcd" % (port, num)),
                 L(0.2, "kernel", "usb %s: device descriptor read/64, error -71" % port),
                 L(0.6, "kernel", "usb %s: device descriptor read/64, error -71" % port),
                 L(1.5, "kernel", "usb %s: device not accepting address %d, error -71" % (port, num + 1)),
                 L(1.6, "kernel", "usb usb%s-port%s: unable to enumerate USB device" % (port[0], port.split("-")[1].split(".")[0]))]
        what = "enumeration"
    else:
        lines = [L(0, "kernel", "xhci_hcd 0000:00:14.0: xHCI host controller not responding, assume dead"),
                 L(0, "kernel", "xhci_hcd 0000:00:14.0: HC died; cleaning up"),
                 L(0.1, "kernel", "usb %s: USB disconnect, device number %d" % (port, num))]
        what = "controller"
    return lines, dict(port=port, what=what)


def ev_nic_link(ctx):
    r = ctx.rng
    nic, drv, pci = ctx.shared("nic")
    down = L(0, "kernel", "%s %s %s: NIC Link is Down" % (drv, pci, nic)) if drv not in ("mlx5_core", "virtio_net") else L(0, "kernel", "%s %s %s: Link down" % (drv, pci, nic))
    speed = r.choice([1000, 10000, 25000]) if drv != "r8169" else 1000
    up = L(r.uniform(2, 40), "kernel", "%s %s %s: NIC Link is Up %d Mbps Full Duplex, Flow Control: RX/TX" % (drv, pci, nic, speed))
    lines = [down]
    if r.random() < 0.5:
        lines.append(L(0.01, ("systemd-networkd", ctx.pid()), "%s: Lost carrier" % nic))
    else:
        lines.append(L(0.01, ("NetworkManager", ctx.pid()), "<info>  [%d.%04d] device (%s): state change: activated -> unavailable (reason 'carrier-changed')" % (r.randint(1700000000, 1790000000), r.randint(0, 9999), nic)))
    flaps = r.random() < 0.4
    came_back = r.random() < 0.7
    if came_back:
        lines.append(up)
        if flaps:
            lines.append(L(up[0] + r.uniform(1, 5), "kernel", down[2]))
    return lines, dict(nic=nic, drv=drv, back=came_back and not flaps, flaps=flaps and came_back)


def ev_tx_timeout(ctx):
    r = ctx.rng
    nic, drv, pci = ctx.shared("nic")
    q = r.randint(0, 7)
    lines = [L(0, "kernel", "NETDEV WATCHDOG: %s (%s): transmit queue %d timed out %d ms" % (nic, drv, q, r.choice([5120, 5376, 6144, 9984])))]
    if drv == "e1000e" and r.random() < 0.6:
        lines.append(L(0, "kernel", "%s %s %s: Detected Hardware Unit Hang:" % (drv, pci, nic)))
        lines.append(L(0, "kernel", "  TDH                  <%x>" % r.randint(0, 255)))
    lines.append(L(r.uniform(0, 1), "kernel", "%s %s %s: %s" % (drv, pci, nic, r.choice(["Reset adapter unexpectedly", "tx timeout, resetting", "TX timeout detected"]))))
    return lines, dict(nic=nic, drv=drv, q=q)


def ev_thermal(ctx):
    r = ctx.rng
    cpus = sorted(r.sample(range(0, 16), r.randint(1, 3)))
    crit = r.random() < 0.15
    lines = []
    events = r.randint(1, 9000)
    for i, c in enumerate(cpus):
        lines.append(L(i * 0.001, "kernel", "CPU%d: %s temperature above threshold, cpu clock throttled (total events = %d)" % (c, r.choice(["Core", "Package"]), events + i)))
    if crit:
        lines.append(L(r.uniform(5, 60), "kernel", "thermal thermal_zone%d: critical temperature reached (%d C), shutting down" % (r.randint(0, 2), r.choice([100, 105, 110]))))
    elif r.random() < 0.6:
        for i, c in enumerate(cpus[:2]):
            lines.append(L(r.uniform(0.1, 5) + i * 0.001, "kernel", "CPU%d: Core temperature/speed normal" % c))
    return lines, dict(cpus=cpus, crit=crit)


def ev_mce(ctx):
    r = ctx.rng
    ue = r.random() < 0.3
    cpu = r.randint(0, 63)
    mc = r.randint(0, 1)
    chan = r.randint(0, 3)
    dimm = r.randint(0, 1)
    lines = [L(0, "kernel", "mce: [Hardware Error]: Machine check events logged")]
    if r.random() < 0.5:
        lines.append(L(0, "kernel", "mce: [Hardware Error]: CPU %d: Machine Check: 0 Bank %d: %s" % (cpu, r.randint(5, 16), r.choice(["8c00004000010090", "cc00008000010091", "9c000040000800c1"]))))
    lines.append(L(0.01, "kernel", "EDAC MC%d: %d %s memory read error on CPU_SrcID#%d_Ha#0_Chan#%d_DIMM#%d (channel:%d slot:%d page:0x%x offset:0x0 grain:32)" % (
        mc, 1 if ue else r.randint(1, 40), "UE" if ue else "CE", mc, chan, dimm, chan, dimm, r.randint(0x1000, 0xfffff))))
    return lines, dict(ue=ue, mc=mc, chan=chan, dimm=dimm)


def ev_unit_failed(ctx):
    r = ctx.rng
    unit, desc = ctx.pick("unit")
    pid = ctx.pid()
    how = r.choice([("code=exited, status=1/FAILURE", "exit-code", "exited with status 1"),
                    ("code=exited, status=203/EXEC", "exit-code", "could not execute its binary (status 203/EXEC)"),
                    ("code=killed, status=9/KILL", "signal", "was killed by SIGKILL"),
                    ("code=dumped, status=11/SEGV", "core-dump", "crashed with SIGSEGV"),
                    (None, "timeout", "timed out while starting")])
    sd = ("systemd", 1)
    lines = []
    if how[0]:
        lines.append(L(0, sd, "%s.service: Main process exited, %s" % (unit, how[0])))
    lines.append(L(0.01, sd, "%s.service: Failed with result '%s'." % (unit, how[1])))
    limit = r.random() < 0.4
    if limit:
        lines.append(L(0.02, sd, "%s.service: Scheduled restart job, restart counter is at %d." % (unit, r.randint(3, 5))))
        lines.append(L(0.03, sd, "%s.service: Start request repeated too quickly." % unit))
        lines.append(L(0.04, sd, "Failed to start %s.service - %s." % (unit, desc)))
    elif r.random() < 0.5:
        lines.append(L(0.02, sd, "Failed to start %s.service - %s." % (unit, desc)))
    else:
        lines.append(L(r.uniform(5, 10), sd, "%s.service: Scheduled restart job, restart counter is at %d." % (unit, r.randint(1, 2))))
    if r.random() < 0.3 and how[1] == "exit-code":
        lines.insert(0, L(-0.05, (unit.split("@")[0], pid), r.choice(["error: bind() to 0.0.0.0:%d failed (98: Address already in use)" % r.choice([80, 443, 8080, 5432]),
                                                                    "FATAL: could not open configuration file: Permission denied",
                                                                    "fatal: cannot load config: unexpected token at line %d" % r.randint(3, 200)])))
    return lines, dict(unit=unit, why=how[2], limit=limit)


def ev_apparmor_denied(ctx):
    r = ctx.rng
    prof = r.choice([("/usr/sbin/cupsd", "cupsd", "/etc/ssl/private/"), ("/usr/bin/man", "man", "/usr/share/groff/"),
                     ("snap.firefox.firefox", "firefox", "/proc/pressure/memory"),
                     ("/usr/sbin/mysqld", "mysqld", "/data/mysql/ibdata1"),
                     ("/usr/sbin/named", "named", "/var/cache/bind/zones/"),
                     ("docker-default", ctx.pick("proc"), "/sys/kernel/mm/transparent_hugepage/enabled"),
                     ("/usr/sbin/tcpdump", "tcpdump", "/home/%s/cap.pcap" % ctx.pick("user"))])
    op, mask = r.choice([("open", "r"), ("open", "w"), ("mknod", "c"), ("exec", "x"), ("file_mmap", "m")])
    pid = ctx.pid()
    n = r.randint(1, 3)
    lines = []
    for i in range(n):
        lines.append(L(i * r.uniform(0.01, 3), "kernel", "audit: type=1400 audit(%d.%03d:%d): apparmor=\"DENIED\" operation=\"%s\" profile=\"%s\" name=\"%s\" pid=%d comm=\"%s\" requested_mask=\"%s\" denied_mask=\"%s\" fsuid=0 ouid=0" % (
            r.randint(1700000000, 1790000000), r.randint(0, 999), r.randint(100, 9999), op, prof[0], prof[2], pid, prof[1], mask, mask)))
    return lines, dict(profile=prof[0], comm=prof[1], path=prof[2], op=op, n=n)


def ev_selinux_denied(ctx):
    r = ctx.rng
    comm, stype = r.choice([("httpd", "httpd_t"), ("nginx", "httpd_t"), ("sshd", "sshd_t"),
                            ("postgres", "postgresql_t"), ("named", "named_t"), ("smbd", "smbd_t"),
                            (ctx.pick("proc"), "unconfined_service_t")])
    perm, cls, name, ttype = r.choice([("read", "file", "index.html", "user_home_t"),
                                       ("name_connect", "tcp_socket", None, "unreserved_port_t"),
                                       ("write", "dir", "uploads", "var_t"),
                                       ("getattr", "file", "server.key", "admin_home_t"),
                                       ("execute", "file", "backup.sh", "tmp_t")])
    pid = ctx.pid()
    target = (" name=\"%s\" dev=\"dm-0\" ino=%d" % (name, r.randint(100, 999999))) if name else (" dest=%d" % r.choice([5432, 6379, 8080, 9200]))
    lines = [L(0, "kernel", "audit: type=1400 audit(%d.%03d:%d): avc:  denied  { %s } for  pid=%d comm=\"%s\"%s scontext=system_u:system_r:%s:s0 tcontext=%s:object_r:%s:s0 tclass=%s permissive=%d" % (
        r.randint(1700000000, 1790000000), r.randint(0, 999), r.randint(100, 9999), perm, pid, comm, target, stype,
        "unconfined_u" if ttype.endswith("home_t") else "system_u", ttype, cls, r.choice([0, 0, 1])))]
    if r.random() < 0.4:
        lines.append(L(r.uniform(0.1, 2), ("setroubleshoot", ctx.pid()), "SELinux is preventing %s from %s access on the %s %s." % (comm, perm, cls, name or "port")))
    return lines, dict(comm=comm, perm=perm, cls=cls, ttype=ttype, target=name or "a TCP port")


EVENTS = {k: globals()["ev_" + k] for k in INCIDENT_KINDS}


def noise_line(ctx):
    r = ctx.rng
    user = ctx.pick("user")
    c = r.randrange(16)
    if c == 0:
        n = r.randint(1, 9000)
        return L(0, ("systemd", 1), "Started session-%d.scope - Session %d of User %s." % (n, n, user))
    if c == 1:
        return L(0, ("CRON", ctx.pid()), "(root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)")
    if c == 2:
        return L(0, ("sshd", ctx.pid()), "Accepted publickey for %s from 10.%d.%d.%d port %d ssh2: ED25519 SHA256:%s" % (
            user, r.randint(0, 255), r.randint(0, 255), r.randint(1, 254), r.randint(32768, 60999),
            "".join(r.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))))
    if c == 3:
        return L(0, ("systemd", 1), r.choice(["Starting apt-daily.service - Daily apt download activities...",
                                              "apt-daily.service: Deactivated successfully.",
                                              "Finished logrotate.service - Rotate log files.",
                                              "Reached target timers.target - Timer Units.",
                                              "Started fstrim.service - Discard unused blocks on filesystems from /etc/fstab."]))
    if c == 4:
        return L(0, ("systemd-logind", ctx.pid()), "New session %d of user %s." % (r.randint(1, 9000), user))
    if c == 5:
        return L(0, ("dhclient", ctx.pid()), "DHCPACK of 10.%d.%d.%d from 10.0.0.1" % (r.randint(0, 255), r.randint(0, 255), r.randint(2, 254)))
    if c == 6:
        return L(0, ("chronyd", ctx.pid()), "Selected source 192.0.2.%d (%d.debian.pool.ntp.org)" % (r.randint(1, 254), r.randint(0, 3)))
    if c == 7:
        return L(0, "kernel", "EXT4-fs (%s%d): mounted filesystem with ordered data mode. Quota mode: none." % (ctx.shared("disk"), r.randint(1, 3)))
    if c == 8:
        return L(0, ("rsyslogd", ctx.pid()), "[origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"%d\"] rsyslogd was HUPed" % ctx.pid())
    if c == 9:
        return L(0, "kernel", "usb %d-%d: new high-speed USB device number %d using xhci_hcd" % (r.randint(1, 4), r.randint(1, 6), r.randint(2, 30)))
    if c == 10:
        return L(0, ("systemd-logind", ctx.pid()), "Session %d logged out. Waiting for processes to exit." % r.randint(1, 9000))
    if c == 11:
        return L(0, ("sudo", ctx.pid()), "%s : TTY=pts/%d ; PWD=/home/%s ; USER=root ; COMMAND=/usr/bin/systemctl status %s" % (user, r.randint(0, 5), user, ctx.pick("unit")[0]))
    if c == 12:
        return L(0, ("kernel", None), "IPv6: ADDRCONF(NETDEV_CHANGE): %s: link becomes ready" % ctx.shared("nic")[0]) if r.random() < 0.3 else L(0, ("systemd", 1), "Started logrotate.timer - Daily rotation of log files.")
    if c == 13:
        return L(0, ("dockerd", ctx.pid()), "time=\"2026-%02d-%02dT%02d:%02d:%02d.%06dZ\" level=info msg=\"ignoring event\" module=libcontainerd namespace=moby" % (
            r.randint(1, 12), r.randint(1, 28), r.randint(0, 23), r.randint(0, 59), r.randint(0, 59), r.randint(0, 999999)))
    if c == 14:
        return L(0, ("systemd", 1), "%s.service: Consumed %d.%03ds CPU time." % (ctx.pick("unit")[0], r.randint(0, 300), r.randint(0, 999)))
    return L(0, ("postfix/smtpd", ctx.pid()), "connect from unknown[192.0.2.%d]" % r.randint(1, 254))


# --- explanations ------------------------------------------------------------------------

def explain(kind, f, r):
    """(what sentence, severity, check clause, one reasoning sentence) for one incident."""
    c = r.choice
    if kind == "kernel_oops":
        return (c(["The kernel hit an oops (%s) in %s inside the %s module" % (f["cause"], f["func"], f["mod"]),
                   "A kernel oops occurred: %s in %s from the %s module" % (f["cause"], f["func"], f["mod"])]),
                "high", c(["check for an updated kernel or %s driver and plan a reboot, since the kernel may now be unstable" % f["mod"],
                           "reboot soon and look for a fixed %s driver or kernel update" % f["mod"]]),
                "The BUG and Oops lines with a RIP in %s mean the kernel crashed in the %s driver while running %s." % (f["func"], f["mod"], f["comm"]))
    if kind == "kernel_warning":
        return (c(["The kernel logged a WARNING in %s from the %s module" % (f["func"], f["mod"]),
                   "A kernel warning fired in the %s driver at %s" % (f["mod"], f["func"])]),
                "medium", c(["watch whether it repeats and check for a %s driver update" % f["mod"],
                             "check for a newer kernel or %s update if the warning recurs" % f["mod"]]),
                "The cut-here block is a WARN splat from %s; the kernel kept running." % f["mod"])
    if kind == "soft_lockup":
        return (c(["CPU%d had a soft lockup: %s kept it busy for %d seconds without scheduling" % (f["cpu"], f["comm"], f["secs"]),
                   "A soft lockup stalled CPU%d for %d seconds while running %s" % (f["cpu"], f["secs"], f["comm"])]),
                "high", c(["check the %s driver around %s and host load, and update the kernel if it repeats" % (f["mod"], f["func"]),
                           "look at what %s was doing in %s and check for firmware or kernel updates" % (f["comm"], f["mod"])]),
                "The watchdog reports CPU%d stuck for %ds with the RIP in %s." % (f["cpu"], f["secs"], f["func"]))
    if kind == "hung_task":
        return (c(["The task %s hung in uninterruptible sleep (state D) for more than %d seconds" % (f["comm"], f["secs"]),
                   "%s was hung waiting on I/O for over %d seconds" % (f["comm"], f["secs"])]),
                "high", c(["check the underlying storage for errors or stalls and the I/O load",
                           "check disk health, I/O latency and whether the storage backend stalled"]),
                "The hung task message shows %s blocked in state D, which usually means stalled I/O." % f["comm"])
    if kind == "oom_kill":
        scope = " in the %s.service memory cgroup" % f["unit"] if f["memcg"] else ""
        return (c(["The system ran out of memory%s and the OOM killer killed %s (pid %d, about %d GB resident)" % (scope, f["victim"], f["pid"], f["gb"]),
                   "Out of memory%s: the kernel killed %s (pid %d) which used about %d GB" % (scope, f["victim"], f["pid"], f["gb"])]),
                "high", c(["check the memory use of %s, its limits and whether the host needs more RAM or swap" % f["victim"],
                           "check why %s grew so large and review memory limits" % f["victim"]]),
                "oom-killer was invoked and %s was chosen and killed%s." % (f["victim"], " by the cgroup limit" if f["memcg"] else ""))
    if kind == "segfault":
        how = "a general protection fault" if f["gp"] else "a segfault"
        return (c(["%s (pid %d) crashed with %s in %s" % (f["proc"], f["pid"], how, f["lib"]),
                   "The process %s crashed (%s in %s)" % (f["proc"], how, f["lib"])]),
                "medium", c(["check the core dump with coredumpctl and whether %s restarted" % f["proc"] if f["dumped"] else "check whether %s restarted and enable core dumps to debug it" % f["proc"],
                             "look at the %s version and its core dump, and report the bug if it repeats" % f["proc"]]),
                "A userspace %s in %s means the program itself crashed, not the kernel." % ("fault" if f["gp"] else "segfault", f["proc"]))
    if kind == "fs_error":
        ro = " and it was remounted read-only" if f["ro"] and f["fs"] == "ext4" else (" and the filesystem was shut down" if f["ro"] else "")
        tool = {"ext4": "e2fsck", "xfs": "xfs_repair", "btrfs": "btrfs scrub"}[f["fs"]]
        return (c(["The %s filesystem on %s reported corruption%s" % (f["fs"], f["part"], ro),
                   "%s filesystem errors appeared on %s%s" % (f["fs"], f["part"], ro)]),
                "critical" if f["ro"] else "high",
                c(["back up the data, then unmount %s and run %s, and check the disk health" % (f["part"], tool),
                   "check the disk with smartctl and run %s on %s when it is unmounted" % (tool, f["part"])]),
                "The %s lines report metadata or checksum errors on %s%s." % (f["fs"], f["part"], " and it went read-only" if f["ro"] else ""))
    if kind == "disk_io_error":
        return (c(["The disk %s returned read errors (ata%d UNC, medium error at sector %d)" % (f["disk"], f["port"], f["sector"]),
                   "%s has unreadable sectors: the disk reported a medium error at sector %d" % (f["disk"], f["sector"])]),
                "high", c(["check smartctl -a /dev/%s for reallocated or pending sectors and replace the disk if they grow" % f["disk"],
                           "run smartctl on /dev/%s, check the cable on ata%d and plan to replace the disk" % (f["disk"], f["port"])]),
                "ata%d failed a command with UNC and the SCSI layer reports a medium error on %s." % (f["port"], f["disk"]))
    if kind == "nvme_error":
        if f["gone"]:
            return (c(["The NVMe controller %s stopped responding and was removed, so its disk is gone" % f["dev"],
                       "The NVMe drive %s dropped off the bus and writes to it failed" % f["dev"]]),
                    "critical", c(["check the drive firmware and power saving (nvme_core.default_ps_max_latency_us=0), then reseat or replace it",
                                   "check nvme smart-log for %s, disable APST power saving and reseat or replace the drive" % f["dev"]]),
                    "CSTS=0xffffffff means the NVMe controller %s vanished, then the kernel removed it." % f["dev"])
        return (c(["The NVMe drive %s had I/O timeouts and the driver aborted or reset commands" % f["dev"],
                   "Commands to the NVMe controller %s timed out and had to be aborted" % f["dev"]]),
                "medium", c(["check nvme smart-log for %s, its firmware version and its temperature" % f["dev"],
                             "update the %s firmware and watch for more timeouts" % f["dev"]]),
                "The nvme lines show I/O timeouts on %s followed by aborts or a reset." % f["dev"])
    if kind == "usb_error":
        desc = {"flapping": ("The USB device on port %s disconnected and reconnected repeatedly" % f["port"], "a loose cable, a failing device or a weak power supply"),
                "enumeration": ("A USB device on port %s failed to enumerate (error -71)" % f["port"], "the cable, the port and the device itself"),
                "controller": ("The USB host controller died and the devices on it, including port %s, were disconnected" % f["port"], "the xHCI controller firmware and kernel, and reload xhci_hcd or reboot")}[f["what"]]
        return (desc[0], "low" if f["what"] != "controller" else "medium", "check " + desc[1],
                "The usb lines show %s on port %s." % ({"flapping": "a disconnect/reconnect loop", "enumeration": "descriptor read errors -71", "controller": "the xHCI controller dying"}[f["what"]], f["port"]))
    if kind == "nic_link":
        state = "came back up" if f["back"] else ("went down again (flapping)" if f["flaps"] else "stayed down")
        return (c(["The network link on %s (%s) went down and %s" % (f["nic"], f["drv"], state),
                   "%s lost its link (carrier) and %s" % (f["nic"], state)]),
                "low" if f["back"] else "medium",
                c(["check the cable, the switch port and the %s driver" % f["drv"],
                   "check the switch port logs and the cable on %s" % f["nic"]]),
                "NIC Link is Down on %s, and afterwards it %s." % (f["nic"], state))
    if kind == "tx_timeout":
        return (c(["The NIC %s (%s) hit a transmit timeout on queue %d and the driver reset it" % (f["nic"], f["drv"], f["q"]),
                   "A transmit queue on %s stalled (NETDEV WATCHDOG) and the adapter was reset" % f["nic"]]),
                "medium", c(["check the %s driver and firmware versions and whether the timeouts repeat" % f["drv"],
                             "update the %s firmware or driver and try disabling offloads if it recurs" % f["drv"]]),
                "NETDEV WATCHDOG means queue %d of %s did not transmit in time." % (f["q"], f["nic"]))
    if kind == "thermal":
        cpus = ", ".join("CPU%d" % c_ for c_ in f["cpus"])
        if f["crit"]:
            return ("The temperature reached the critical trip point and the machine shut itself down after %s throttled" % cpus,
                    "critical", "check the fans, heatsinks and airflow before running it again",
                    "Throttling on %s was followed by a critical temperature shutdown." % cpus)
        return (c(["%s went above the temperature threshold and were throttled" % cpus if len(f["cpus"]) > 1 else "%s went above the temperature threshold and was throttled" % cpus,
                   "High temperature made the kernel throttle the clock of %s" % cpus]),
                "low", c(["check the fans, dust and cooling, and the load at that time",
                          "check cooling and the sensors output if it keeps happening"]),
                "The clock was throttled on %s because of temperature." % cpus)
    if kind == "mce":
        if f["ue"]:
            return ("A machine check reported an uncorrectable memory hardware error on MC%d channel %d DIMM %d" % (f["mc"], f["chan"], f["dimm"]),
                    "critical", "replace that DIMM soon and check which processes were affected",
                    "An EDAC UE means the hardware error could not be corrected.")
        return (c(["EDAC logged corrected memory errors (a hardware error) on MC%d channel %d DIMM %d" % (f["mc"], f["chan"], f["dimm"]),
                   "The memory controller corrected a hardware error on MC%d channel %d DIMM %d" % (f["mc"], f["chan"], f["dimm"])]),
                "medium", c(["watch the error count with ras-mc-ctl and replace the DIMM if it keeps rising",
                             "check the DIMM in that slot and replace it if corrected errors keep growing"]),
                "MCE and EDAC CE lines mean corrected hardware memory errors on one DIMM.")
    if kind == "unit_failed":
        return (c(["The service %s failed: it %s%s" % (f["unit"], f["why"], " and hit its restart limit" if f["limit"] else ""),
                   "%s.service failed because it %s%s" % (f["unit"], f["why"], ", and systemd gave up restarting it" if f["limit"] else "")]),
                "high" if f["limit"] else "medium",
                c(["check journalctl -u %s for the error before the failure and fix its configuration" % f["unit"],
                   "run systemctl status %s and read its logs to find why it %s" % (f["unit"], f["why"])]),
                "systemd reports %s.service failed (%s)." % (f["unit"], f["why"]))
    if kind == "apparmor_denied":
        return (c(["AppArmor denied %s (profile %s) %s access to %s" % (f["comm"], f["profile"], f["op"], f["path"]),
                   "The AppArmor profile %s blocked %s from %s on %s" % (f["profile"], f["comm"], f["op"], f["path"])]),
                "low", c(["check whether the access is expected and, if so, extend the profile %s" % f["profile"],
                          "if %s needs that path, add a rule to its AppArmor profile; otherwise ignore it" % f["comm"]]),
                "apparmor=\"DENIED\" lines show the profile %s blocking %s." % (f["profile"], f["comm"]))
    if kind == "selinux_denied":
        return (c(["SELinux denied %s the %s permission on %s (type %s)" % (f["comm"], f["perm"], f["target"], f["ttype"]),
                   "An SELinux AVC denial stopped %s from doing %s on %s" % (f["comm"], f["perm"], f["target"])]),
                "low", c(["check the file labels with ls -Z and fix them with restorecon, or use audit2why to see which boolean is needed",
                          "run audit2why on the denial and relabel %s if its type is wrong" % f["target"]]),
                "The avc denied line shows SELinux refused %s the %s permission on type %s." % (f["comm"], f["perm"], f["ttype"]))
    raise KeyError(kind)


def render_line(fmt, ctx, t, src, msg, host):
    """t is seconds since an arbitrary base; fmt is one of the three timestamp styles."""
    if isinstance(src, tuple) and src[0] == "kernel":
        src = "kernel"
    if fmt["style"] == "dmesg":
        up = fmt["uptime"] + t
        prefix = "[%12.6f] " % up if fmt["pad"] else "[%.6f] " % up
        if src == "kernel":
            return prefix + msg
        return prefix + "%s[%d]: %s" % (src[0], src[1], msg) if src[1] else prefix + msg
    sec = fmt["epoch"] + int(t)
    hh, mm, ss = (sec // 3600) % 24, (sec // 60) % 60, sec % 60
    day = fmt["day"] + (sec // 86400)
    who = "kernel" if src == "kernel" else ("%s[%d]" % src if src[1] else src[0])
    if fmt["style"] == "syslog":
        return "%s %2d %02d:%02d:%02d %s %s: %s" % (MONTHS[fmt["month"]], min(day, 28), hh, mm, ss, host, who, msg)
    return "%d-%02d-%02dT%02d:%02d:%02d%s %s %s: %s" % (fmt["year"], fmt["month"] + 1, min(day, 28), hh, mm, ss, fmt["tz"], host, who, msg)


# Length budget in Qwen2 pre-tokens (a lower bound on BPE tokens; the ~4k-token BPE trained on this
# data needs about 1.1 tokens per pre-token), which keeps examples under 512 tokens.
MAX_PRETOKENS = 450
OPTIONAL = (" ", "Modules linked in", "Code:", "---[ end trace", "------------[ cut here", "\"echo 0",
            "Call Trace:", "mce: [Hardware Error]: CPU", "  TDH")
PRETOKEN_RE = regex.compile(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def pretokens(text):
    return len(PRETOKEN_RE.findall(text))


def make_example(seed, index, split, mix):
    """mix: tuple of incident kinds (empty for a healthy excerpt). Redraws the field values
    (up to 50 times) until the excerpt fits MAX_PRETOKENS; noise lines and optional incident
    lines are dropped to fit."""
    for attempt in range(50):
        ex = make_example_once(seed, index, split, mix, attempt)
        if ex is not None:
            return ex
    # Rare long pairs: keep the shortest draw (training drops any example over 512 tokens).
    return min((make_example_once(seed, index, split, mix, a, budget=10**6) for a in range(50)),
               key=lambda e: pretokens(e["text"]))


def make_example_once(seed, index, split, mix, attempt, budget=None):
    rng = random.Random("%d/%s/%d/%d" % (seed, split, index, attempt))
    ctx = Ctx(rng, split)
    host = ctx.pick("host")
    style = rng.choice(["dmesg", "syslog", "journal"])
    fmt = dict(style=style, uptime=rng.uniform(3, 3e6), pad=rng.random() < 0.7,
               epoch=rng.randint(0, 86400 * 3), day=rng.randint(1, 25), month=rng.randrange(12),
               year=rng.choice([2024, 2025, 2026]), tz=rng.choice(["+0000", "+00:00", "+0100", "-0500"]))
    timeline = []
    facts = []
    t0 = 0.0
    for k in mix:
        lines, f = EVENTS[k](ctx)
        start = t0 + rng.uniform(0.5, 40)
        timeline.extend((start + dt, i, src, msg, k) for i, (dt, src, msg) in enumerate(lines))
        facts.append((k, f))
        t0 = start + rng.uniform(-2, 20) if rng.random() < 0.5 else t0
    n_inc = len(timeline)
    n_noise = rng.randint(3, 6) if not mix else rng.randint(max(0, 3 - n_inc), max(0, 3 - n_inc, 11 - n_inc))
    span = max([x[0] for x in timeline] + [60.0])
    for j in range(n_noise):
        dt, src, msg = noise_line(ctx)
        for _ in range(4):  # dmesg mostly shows kernel messages
            if style != "dmesg" or src == "kernel" or rng.random() < 0.4:
                break
            dt, src, msg = noise_line(ctx)
        timeline.append((rng.uniform(0, span + 5), 100 + j, src, msg, "noise"))
    timeline.sort(key=lambda x: (x[0], x[1]))
    if not mix:
        reasoning = rng.choice(["These lines are logins, cron, timers and other routine messages; nothing reports an error.",
                                "I see only routine service, session and timer messages from %s, no errors or failures." % host])
        answer = rng.choice(["This is normal activity on %s: sessions, scheduled jobs and service housekeeping. Severity: none. Nothing needs checking." % host,
                             "Everything here looks normal: routine logins, timers and service messages. Severity: none. No action is needed."])
        severity = "none"
    else:
        parts = [explain(k, f, rng) for k, f in facts]
        order = sorted(range(len(parts)), key=lambda i: -SEVERITY_RANK[parts[i][1]])
        parts = [parts[i] for i in order]
        kinds_sorted = [facts[i][0] for i in order]
        severity = parts[0][1]
        think = [p[3] for p in parts]
        if len(parts) == 2:
            related = set(kinds_sorted) & {"disk_io_error", "fs_error", "hung_task"}
            if len(related) == 2:
                think.append("Both point at the same storage, so the disk is the likely root cause.")
            elif {"nic_link", "tx_timeout"} <= set(kinds_sorted):
                think.append("Both involve %s, so the NIC or its link is the common factor." % ctx.memo["nic"][0])
            else:
                think.append("The two problems look unrelated.")
        reasoning = " ".join(think)
        if len(parts) == 1:
            answer = "%s. Severity: %s. %s." % (parts[0][0], parts[0][1], parts[0][2][0].upper() + parts[0][2][1:])
        else:
            second = parts[1][0]
            if second.split()[0] in ("The", "A", "An", "Out", "High", "Commands"):
                second = second[0].lower() + second[1:]
            answer = "%s. Also, %s. Severity: %s overall. First %s; then %s." % (
                parts[0][0], second, severity, parts[0][2], parts[1][2])
    system = SYSTEM_PROMPT if rng.random() < 0.5 else ""

    # Fit the length budget: drop noise lines, or give up (the caller redraws).
    rendered = [render_line(fmt, ctx, t, src, msg, host) for t, _, src, msg, _ in timeline]
    noise_at = [i for i, x in enumerate(timeline) if x[4] == "noise"]
    rng.shuffle(noise_at)
    # After the noise, optional incident detail goes (last first): trace frames, module lists...
    noise_at = [i for i, x in enumerate(timeline) if x[4] != "noise" and x[3].startswith(OPTIONAL)] + noise_at
    budget = (budget or MAX_PRETOKENS) - pretokens(system + " " + reasoning + " The other lines are routine. " + answer) - 12
    cost = [pretokens(x) + 1 for x in rendered]
    drop = set()
    while sum(c for i, c in enumerate(cost) if i not in drop) > budget:
        if not noise_at or len(rendered) - len(drop) <= 3:
            return None
        i = noise_at.pop()
        drop.add(i)
        n_noise -= timeline[i][4] == "noise"
    excerpt = "\n".join(x for i, x in enumerate(rendered) if i not in drop)
    if mix and n_noise > 0:
        reasoning += " The other lines are routine."
    text = BOS + system + USER + excerpt + ASSISTANT + "<think>\n" + reasoning + "\n</think>\n\n" + answer + EOS
    kinds = sorted(set(mix)) if mix else ["healthy"]
    return dict(id="%s-%d" % (split, index), split=split, kinds=kinds,
                keywords=[KEYWORDS[k] for k in kinds], severity=severity, host=host, style=style,
                system=system, excerpt=excerpt, reasoning=reasoning, answer=answer, text=text)


def choose_mix(rng, split, heldout_combo):
    if heldout_combo:
        return tuple(rng.sample(sorted(rng.choice(sorted(HELDOUT_PAIRS, key=sorted))), 2))
    u = rng.random()
    if u < 0.1:
        return ()
    if u < 0.6:
        return (rng.choice(INCIDENT_KINDS),)
    while True:
        pair = tuple(rng.sample(INCIDENT_KINDS, 2))
        if frozenset(pair) not in HELDOUT_PAIRS:
            return pair


def generate(seed, n_train, n_test):
    out = {"train": [], "test": []}
    for split, n in (("train", n_train), ("test", n_test)):
        mixrng = random.Random("%d/mix/%s" % (seed, split))
        for i in range(n):
            combo = split == "test" and i % 2 == 1
            ex = make_example(seed, i, split, choose_mix(mixrng, split, combo))
            for kw in ex["keywords"]:
                assert kw in ex["answer"].lower(), (kw, ex["answer"])
            ex["heldout"] = ("values+combination" if combo else "values") if split == "test" else "none"
            out[split].append(ex)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=40000)
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    data = generate(a.seed, a.train, a.test)
    for split in ("train", "test"):
        with open(os.path.join(a.out, split + ".jsonl"), "w", encoding="utf-8") as f:
            for ex in data[split]:
                f.write(json.dumps(ex, ensure_ascii=False) + "\n")
    with open(os.path.join(a.out, "keywords.json"), "w", encoding="utf-8") as f:
        json.dump(dict(keywords=KEYWORDS, heldout_pairs=sorted(sorted(p) for p in HELDOUT_PAIRS),
                       heldout_values={k: v[1] for k, v in POOLS.items() if k != "fs"}), f, indent=1)
    print("wrote %d train, %d test examples to %s" % (len(data["train"]), len(data["test"]), a.out))


if __name__ == "__main__":
    main()
