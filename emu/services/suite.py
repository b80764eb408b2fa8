"""The real-program benchmark suite (`emu bench --suite`, perf/bench_suite.py):
programs from Debian packages, each on an input generated from a fixed seed,
run as whole processes under emu, natively and under qemu-x86_64, interleaved
(emu, native, qemu, then again), with medians. Every output (and exit
status) must equal the native one, or the row is refused.

Times are CPU seconds (user + system) of each whole process, medians: on a
shared machine they depend far less on the other load than wall time does
(the wall-clock medians are kept too). Per program it reports the three
times, emu/qemu and emu/native, emu's MIPS (instructions retired / emu's CPU
seconds, its start-up included), translations per distinct block, TLB
misses per 1,000 instructions, page faults and system calls (from
`emu run --stats-file`).
"""
from __future__ import annotations

import json
import math
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

SEED = 19
CC1 = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"


@dataclass
class Program:
    name: str
    what: str            # the kind of work (compression, database...)
    package: str         # the Debian package it comes from
    argv: list           # the command; "{dir}" is the input directory
    exe: str             # the file that must exist
    inputs: dict = field(default_factory=dict)   # file name -> generator(rng) -> bytes
    reference: bool = False   # the synthetic integer workloads the real programs are compared with


# ---- seeded inputs ----

def _words(rng: random.Random, n: int) -> list[str]:
    syll = ["ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "ve", "dar", "el", "qu", "zo", "an", "ber"]
    vocab = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(2000)]
    weights = [1.0 / (i + 1) for i in range(len(vocab))]        # Zipf-like, as text is
    return rng.choices(vocab, weights, k=n)


def gen_text(rng: random.Random, nbytes: int = 1 << 20) -> bytes:
    out, size = [], 0
    words = _words(rng, nbytes // 5)
    i = 0
    while size < nbytes:
        k = rng.randint(6, 16)
        line = " ".join(words[i % len(words):i % len(words) + k]) + " %d\n" % rng.randint(0, 99999)
        i += k
        out.append(line)
        size += len(line)
    return "".join(out).encode()[:nbytes]


def gen_csv(rng: random.Random, rows: int = 60000) -> bytes:
    names = _words(rng, rows)
    return "".join("%d,%s,%d.%02d\n" % (rng.randint(0, 10 ** 9), names[i], rng.randint(0, 9999), rng.randint(0, 99))
                   for i in range(rows)).encode()


def gen_binary(rng: random.Random, nbytes: int = 8 << 20) -> bytes:
    return rng.randbytes(nbytes)


def gen_sql(rng: random.Random) -> bytes:
    """Tables filled from the seed, an index, joins, aggregates and a sort."""
    lines = ["CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, cat INTEGER, price REAL);",
             "CREATE TABLE sale(id INTEGER PRIMARY KEY, item INTEGER, qty INTEGER, day INTEGER);",
             "BEGIN;"]
    names = _words(rng, 4000)
    for i in range(4000):
        lines.append("INSERT INTO item VALUES(%d,'%s',%d,%d.%02d);" % (i, names[i], rng.randint(0, 40),
                                                                      rng.randint(1, 500), rng.randint(0, 99)))
    for i in range(20000):
        lines.append("INSERT INTO sale VALUES(%d,%d,%d,%d);" % (i, rng.randint(0, 3999), rng.randint(1, 20),
                                                               rng.randint(0, 364)))
    lines += ["COMMIT;", "CREATE INDEX sale_item ON sale(item);",
              "SELECT cat, count(*), printf('%.2f', sum(price*qty)) FROM sale JOIN item ON item.id = sale.item "
              "GROUP BY cat ORDER BY cat;",
              "SELECT name, sum(qty) AS q FROM sale JOIN item ON item.id = sale.item GROUP BY name "
              "ORDER BY q DESC, name LIMIT 20;",
              "SELECT day, count(DISTINCT item) FROM sale WHERE qty > 10 GROUP BY day ORDER BY day LIMIT 30;",
              "SELECT substr(name, 1, 3) AS p, count(*) FROM item GROUP BY p ORDER BY count(*) DESC, p LIMIT 10;",
              "SELECT count(*) FROM sale s1 JOIN sale s2 ON s1.item = s2.item AND s1.day < s2.day "
              "WHERE s1.qty = 7;"]
    return "\n".join(lines).encode() + b"\n"


def gen_lua(rng: random.Random) -> bytes:
    return ("""
local seed = %d
local function rnd() seed = (seed * 1103515245 + 12345) %% 2147483648; return seed end
local t = {}
for i = 1, 60000 do t[i] = rnd() %% 100000 end
table.sort(t)
local words, counts = {}, {}
for i = 1, 40000 do
  local w = string.format("w%%x", rnd() %% 5000)
  counts[w] = (counts[w] or 0) + 1
end
for w, n in pairs(counts) do words[#words + 1] = w end
table.sort(words, function(a, b) if counts[a] ~= counts[b] then return counts[a] > counts[b] end return a < b end)
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local parts = {}
for i = 1, 2000 do parts[#parts + 1] = tostring(i * i) end
local s = table.concat(parts, ",")
local sum = 0
for n in s:gmatch("%%d+") do sum = sum + tonumber(n) %% 1000 end
local obj = {}
for i = 1, 20000 do obj[i] = {x = i, y = rnd() %% 1000, f = function(self) return self.x + self.y end} end
local acc = 0
for i = 1, #obj do acc = acc + obj[i]:f() end
print(t[1], t[#t], t[30000], words[1], counts[words[1]], fib(24), sum, acc)
""" % rng.randint(1, 10 ** 6)).encode()


def gen_perl(rng: random.Random) -> bytes:
    return rb"""
my %count; my $lines = 0; my $digits = 0;
while (my $l = <>) {
  $lines++;
  chomp $l;
  my @w = split / /, $l;
  for my $w (@w) { if ($w =~ /^\d+$/) { $digits += $w; next } $count{lc $w}++; }
  $l =~ s/([aeiou])([a-z])/$2$1/g;
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0..9];
printf "%d lines, %d words, digits %d\n", $lines, scalar(keys %count), $digits;
print join(",", map { "$_=$count{$_}" } @top), "\n";
"""


def gen_python(rng: random.Random) -> bytes:
    return ("""
import json, re, hashlib
seed = %d
def rnd():
    global seed
    seed = (seed * 6364136223846793005 + 1442695040888963407) %% (1 << 64)
    return seed >> 33
d = {}
for i in range(60000):
    k = "k%%d" %% (rnd() %% 8000)
    d[k] = d.get(k, 0) + 1
top = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
rows = [{"id": i, "v": rnd() %% 1000, "s": "x" * (i %% 7)} for i in range(8000)]
blob = json.dumps(rows, sort_keys=True)
back = json.loads(blob)
words = re.findall(r"[a-z]+", " ".join("abc%%dxyz" %% (rnd() %% 100) for _ in range(20000)))
class P:
    __slots__ = ("x", "y")
    def __init__(self, x, y): self.x, self.y = x, y
    def norm(self): return self.x * self.x + self.y * self.y
ps = [P(rnd() %% 100, rnd() %% 100) for _ in range(30000)]
print(top, len(blob), sum(r["v"] for r in back), len(words), sum(p.norm() for p in ps),
      hashlib.sha256(blob.encode()).hexdigest()[:16])
""" % rng.randint(1, 10 ** 6)).encode()


def gen_c(rng: random.Random, nfuncs: int = 3) -> bytes:
    """A C translation unit for gcc's cc1 (no headers: cc1 compiles it as is)."""
    out = ["typedef unsigned long u64; typedef unsigned int u32;",
           "struct node { struct node *next; u64 key; u32 tag; };"]
    for i in range(nfuncs):
        body = []
        for j in range(rng.randint(6, 14)):
            op = rng.choice(["+", "-", "*", "^", "|", "&"])
            body.append("  for (u32 k%d = 0; k%d < n; k%d++) { x = (x %s (u64)k%d) * %du + (x >> %d); "
                        "if (x & %d) y += x; else y ^= x << %d; }"
                        % (j, j, j, op, j, rng.randint(1, 1000), rng.randint(1, 31), rng.randint(1, 255),
                           rng.randint(1, 7)))
        body.append("  for (struct node *p = l; p; p = p->next) { if (p->tag == %du) y += p->key; "
                    "else switch (p->key & 3) { case 0: y -= %d; break; case 1: y *= 3; break; default: y ^= p->tag; } }"
                    % (rng.randint(0, 9), rng.randint(1, 99)))
        out.append("u64 f%d(u64 x, u32 n, struct node *l) { u64 y = %d;\n%s\n  return x + y; }"
                   % (i, rng.randint(0, 99), "\n".join(body)))
    return ("\n".join(out) + "\n").encode()


def gen_bc(rng: random.Random) -> bytes:
    return b"scale=500\nx=4*a(1)\nlength(x)\ne(1)+l(%d)\nsqrt(%d)\nquit\n" % (rng.randint(2, 999), rng.randint(2, 99999))


def gen_wav(rng: random.Random, seconds: float = 4.0, rate: int = 44100) -> bytes:
    """A mono 16-bit WAV: a few tones with a seeded melody and some noise."""
    n = int(seconds * rate)
    freqs = [rng.choice([220, 247, 262, 294, 330, 349, 392, 440, 494, 523]) for _ in range(16)]
    samples = bytearray()
    step = n // len(freqs)
    for i in range(n):
        f = freqs[min(i // step, len(freqs) - 1)]
        v = 0.5 * math.sin(2 * math.pi * f * i / rate) + 0.2 * math.sin(2 * math.pi * 2 * f * i / rate)
        v += (rng.random() - 0.5) * 0.05
        samples += struct.pack("<h", int(max(-1.0, min(1.0, v)) * 32000))
    hdr = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(samples))
    return hdr + bytes(samples)


def programs() -> list[Program]:
    text = lambda rng: gen_text(rng, 384 << 10)
    return [
        Program("xz", "compression (LZMA)", "xz-utils", ["/usr/bin/xz", "-6", "-T1", "-c", "{dir}/text"],
                "/usr/bin/xz", {"text": text}),
        Program("bzip2", "compression (BWT)", "bzip2", ["/usr/bin/bzip2", "-9", "-c", "{dir}/text"],
                "/usr/bin/bzip2", {"text": text}),
        Program("sqlite3", "database", "sqlite3", ["/usr/bin/sqlite3", ":memory:", ".read {dir}/script.sql"],
                "/usr/bin/sqlite3", {"script.sql": gen_sql}),
        Program("lua", "interpreter (Lua 5.4)", "lua5.4", ["/usr/bin/lua5.4", "{dir}/script.lua"],
                "/usr/bin/lua5.4", {"script.lua": gen_lua}),
        Program("perl", "interpreter (Perl), text", "perl-base", ["/usr/bin/perl", "{dir}/script.pl", "{dir}/text"],
                "/usr/bin/perl", {"script.pl": gen_perl, "text": text}),
        Program("python3", "interpreter (CPython 3.11)", "python3.11-minimal",
                ["/usr/bin/python3", "-S", "-E", "{dir}/script.py"], "/usr/bin/python3", {"script.py": gen_python}),
        Program("openssl", "cryptography (SHA-512)", "openssl",
                ["/usr/bin/openssl", "dgst", "-sha512", "-r", "{dir}/blob"], "/usr/bin/openssl",
                {"blob": lambda rng: gen_binary(rng, 16 << 20)}),
        Program("cc1", "compiler (gcc 12 cc1 -O2)", "cpp-12",
                [CC1, "-quiet", "-O2", "{dir}/prog.c", "-o", "-"], CC1, {"prog.c": gen_c}),
        Program("sort", "text tools (sort)", "coreutils",
                ["/usr/bin/sort", "--parallel=1", "-S", "64M", "-t,", "-k2,2", "-k1,1n", "{dir}/data.csv"],
                "/usr/bin/sort", {"data.csv": gen_csv}),
        Program("bc", "arbitrary precision (bc -l)", "bc", ["/usr/bin/bc", "-l", "{dir}/script.bc"],
                "/usr/bin/bc", {"script.bc": gen_bc}),
        Program("lame", "media, floating point (MP3 encoder)", "lame",
                ["/usr/bin/lame", "--quiet", "-b", "128", "{dir}/tone.wav", "-"], "/usr/bin/lame",
                {"tone.wav": gen_wav}),
    ]


BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "guests", "bench",
                     "bin")


def references() -> list[Program]:
    """The synthetic integer workloads (guests/bench, gcc -O2, freestanding),
    run the same way: the yardstick of "how far behind native" for the
    interpreter tier."""
    return [Program("int:" + n, "synthetic integer (guests/bench)", "-", [os.path.join(BENCH, n)],
                    os.path.join(BENCH, n), reference=True) for n in ("sieve", "crc32", "sort", "hash", "matmul")]


def make_inputs(progs: list[Program], where: str, seed: int = SEED) -> None:
    """Write every program's inputs into `where` (the same seed, the same bytes)."""
    done = {}
    for p in progs:
        for name, gen in p.inputs.items():
            path = os.path.join(where, name)
            if name in done:
                continue
            rng = random.Random("%d/%s" % (seed, name))
            with open(path, "wb") as f:
                f.write(gen(rng))
            done[name] = path


# ---- running ----

class SuiteError(Exception):
    pass


def _env() -> dict:
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp", "TZ": "UTC"}
    for k in ("EMU_TIER", "EMU_JIT_THRESHOLD", "EMU_CODE_CACHE"):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def _timed(cmd: list[str], env: dict, timeout: float) -> tuple[float, float, int, bytes]:
    """(wall seconds, CPU seconds (user + system, the process and its
    children), status, stdout) of one whole process."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       env=env, timeout=timeout)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, r.returncode, r.stdout


def run_suite(names: list[str] | None = None, runs: int = 3, qemu: bool = True, code_cache_mib: float | None = None,
              timeout: float = 1800.0, log=None) -> list[dict]:
    """Run the suite; one result dict per program."""
    progs = [p for p in programs() + references() if names is None or p.name in names
             or (p.reference and "int" in names)]
    if names:
        unknown = set(names) - {p.name for p in progs} - {"int"}
        if unknown:
            raise SuiteError("no such program in the suite: %s" % ", ".join(sorted(unknown)))
    qemu_bin = shutil.which("qemu-x86_64") if qemu else None
    env = _env()
    results = []
    with tempfile.TemporaryDirectory(prefix="emu-suite-") as d:
        make_inputs(progs, d)
        stats_path = os.path.join(d, "stats.json")
        for p in progs:
            if not os.path.exists(p.exe):
                results.append({"name": p.name, "what": p.what, "package": p.package,
                                "skipped": "%s is not installed (Debian package %s)" % (p.exe, p.package)})
                continue
            argv = [a.replace("{dir}", d) for a in p.argv]
            emu_cmd = [sys.executable, "-m", "emu", "run", "--stats-file", stats_path]
            if code_cache_mib is not None:
                emu_cmd += ["--code-cache", str(code_cache_mib)]
            emu_cmd += argv
            times = {"emu": [], "native": [], "qemu": []}
            walls = {"emu": [], "native": [], "qemu": []}
            stats = []
            want = None
            for _ in range(runs):
                for runner in ("emu", "native", "qemu"):
                    if runner == "qemu" and not qemu_bin:
                        continue
                    cmd = emu_cmd if runner == "emu" else ([qemu_bin] + argv if runner == "qemu" else argv)
                    wall, cpu, rc, out = _timed(cmd, env, timeout)
                    if want is None and runner == "native":
                        want = (rc, out)
                    times[runner].append(cpu)
                    walls[runner].append(wall)
                    if runner == "emu":
                        with open(stats_path) as f:
                            stats.append(json.load(f))
                        got_emu = (rc, out)
                    elif runner == "qemu":
                        got_qemu = (rc, out)
                if got_emu != want:
                    raise SuiteError("%s: emu's output (status %d, %d bytes) differs from native's (status %d, "
                                     "%d bytes)" % (p.name, got_emu[0], len(got_emu[1]), want[0], len(want[1])))
                if qemu_bin and got_qemu != want:
                    raise SuiteError("%s: qemu's output differs from native's" % p.name)
            med = {k: statistics.median(v) for k, v in times.items() if v}
            wmed = {k: statistics.median(v) for k, v in walls.items() if v}
            s = stats[len(stats) // 2]
            r = {"name": p.name, "what": p.what, "package": p.package, "argv": argv, "reference": p.reference,
                 "emu_s": med["emu"], "native_s": med["native"], "qemu_s": med.get("qemu"),
                 "emu_wall_s": wmed["emu"], "native_wall_s": wmed["native"], "qemu_wall_s": wmed.get("qemu"),
                 "emu_native": med["emu"] / med["native"],
                 "emu_qemu": med["emu"] / med["qemu"] if "qemu" in med else None,
                 "instructions": s["instructions"], "mips": s["instructions"] / med["emu"] / 1e6,
                 "mips_in_run": s["mips"], "translations_per_block": s["translations_per_block"],
                 "translations": s["translations"], "distinct_blocks": s["distinct_blocks"],
                 "evictions": s["evictions"], "cache_flushes": s["cache_flushes"],
                 "code_cache_mib": s["code_cache_bytes"] / 2 ** 20,
                 "tlb_misses_per_1k": s["tlb_misses_per_1k"], "tlb_hit_rate": s["tlb_hit_rate"],
                 "slow_lookup_share": s["slow_lookup_share"], "page_faults": s["page_faults"],
                 "page_faults_in_core": s["page_faults_in_core"], "syscalls": s["syscalls"],
                 "output_bytes": len(want[1]), "same_output": True}
            for k in ("ras_hit_rate", "ibtc_hit_rate"):
                if k in s:
                    r[k] = s[k]
            results.append(r)
            if log is not None:
                log(format_row(r))
    return results


def geomean(xs: list[float]) -> float:
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def format_row(r: dict) -> str:
    if "skipped" in r:
        return "%-8s skipped: %s" % (r["name"], r["skipped"])
    q = "%.3f" % r["qemu_s"] if r["qemu_s"] is not None else "-"
    eq = "%.1f" % r["emu_qemu"] if r["emu_qemu"] is not None else "-"
    return ("%-8s emu %7.3f s  native %7.4f s  qemu %7s s  emu/qemu %5s  emu/native %6.1f  %6.1f MIPS  "
            "transl/block %.3f  TLB miss/1k %.3f  slow lookups %.1f%%  faults %d (%d core)  syscalls %d"
            % (r["name"], r["emu_s"], r["native_s"], q, eq, r["emu_native"], r["mips"], r["translations_per_block"],
               r["tlb_misses_per_1k"], 100 * r["slow_lookup_share"], r["page_faults"], r["page_faults_in_core"],
               r["syscalls"]))


def summary(results: list[dict]) -> dict:
    """Geometric means over the real programs, and how far behind native each
    is relative to the synthetic integer workloads (their geometric mean)."""
    done = [r for r in results if "skipped" not in r and not r.get("reference")]
    refs = [r for r in results if "skipped" not in r and r.get("reference")]
    out = {}
    if done:
        out["emu_native"] = geomean([r["emu_native"] for r in done])
        q = [r["emu_qemu"] for r in done if r["emu_qemu"]]
        out["emu_qemu"] = geomean(q) if q else None
        out["mips"] = geomean([r["mips"] for r in done])
    if refs:
        out["synthetic_emu_native"] = geomean([r["emu_native"] for r in refs])
        out["behind_synthetic"] = {r["name"]: r["emu_native"] / out["synthetic_emu_native"] for r in done}
    return out


def report(results: list[dict]) -> str:
    lines = [format_row(r) for r in results]
    sm = summary(results)
    if "behind_synthetic" in sm:
        lines.append("synthetic integer workloads: emu/native %.1f; each program against it: %s"
                     % (sm["synthetic_emu_native"], ", ".join("%s %.2fx" % kv for kv in sm["behind_synthetic"].items())))
    done = [r for r in results if "skipped" not in r and not r.get("reference")]
    if done:
        lines.append("geometric mean: emu/native %.1f, emu/qemu %s, MIPS %.0f"
                     % (geomean([r["emu_native"] for r in done]),
                        "%.2f" % geomean([r["emu_qemu"] for r in done if r["emu_qemu"]])
                        if any(r["emu_qemu"] for r in done) else "-",
                        geomean([r["mips"] for r in done])))
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    head = ["program", "what (Debian package)", "instructions", "emu CPU s", "native CPU s", "qemu CPU s", "emu/qemu",
            "emu/native", "emu MIPS", "translations per block", "TLB misses /1k insns", "slow lookups",
            "page faults (in core)", "syscalls"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    done = [r for r in results if "skipped" not in r and not r.get("reference")]
    refs = [r for r in results if "skipped" not in r and r.get("reference")]
    for r in done + refs:
        out.append("| %s | %s (%s) | %s | %.3f | %.4f | %s | %s | %.1fx | %.0f | %.3f | %.3f | %.1f%% | %d (%d) | %d |"
                   % (r["name"], r["what"], r["package"], format(r["instructions"], ","), r["emu_s"], r["native_s"],
                      "%.3f" % r["qemu_s"] if r["qemu_s"] is not None else "-",
                      "%.2fx" % r["emu_qemu"] if r["emu_qemu"] is not None else "-", r["emu_native"], r["mips"],
                      r["translations_per_block"], r["tlb_misses_per_1k"], 100 * r["slow_lookup_share"],
                      r["page_faults"], r["page_faults_in_core"], r["syscalls"]))
    if done:
        out.append("| **geometric mean** | | | | | | %s | %.1fx | %.0f | | | | | |"
                   % ("%.2fx" % geomean([r["emu_qemu"] for r in done if r["emu_qemu"]])
                      if any(r["emu_qemu"] for r in done) else "-",
                      geomean([r["emu_native"] for r in done]), geomean([r["mips"] for r in done])))
    sm = summary(results)
    if "behind_synthetic" in sm:
        out.append("\nThe synthetic integer workloads (int:*) run %.1fx behind native (geometric mean); each real "
                   "program's emu/native over that: %s; worst %.2fx."
                   % (sm["synthetic_emu_native"], ", ".join("%s %.2fx" % kv for kv in sm["behind_synthetic"].items()),
                      max(sm["behind_synthetic"].values())))
    for r in results:
        if "skipped" in r:
            out.append("\n%s: skipped (%s)" % (r["name"], r["skipped"]))
    return "\n".join(out)
