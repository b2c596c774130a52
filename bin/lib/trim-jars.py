#!/usr/bin/env python3
"""Trims dependency jars to what a recorded run loaded, for packs copied to GPU hosts (bin/gpu-pack).

usage: trim-jars.py CLASS_LOG OUT_DIR [--stored] [--trim-only JAR_PREFIX ...] [--keep-whole JAR_PREFIX ...]
                   [--keep ENTRY_PREFIX ...] [--drop ENTRY_PREFIX ...] JAR...

CLASS_LOG is a `-Xlog:class+load` (or -verbose:class) log of a run that exercised the code paths the pack needs.
Jars of at least TRIM_FROM_BYTES keep only the classes that run loaded (with their nested classes, which load lazily on other paths) and its
non-class resources; smaller jars keep every class (libraries such as log4j probe for classes reflectively and take
other paths when one is missing, so trimming them is not worth the risk). Every jar drops native libraries for other platforms than linux x86_64 (the GPU hosts) and, for jars
that had no class loaded at all, their native libraries. Jars named by --keep-whole keep every class (ours, and
libraries that pick a path by probing for classes: log4j, netty); with --trim-only, only the jars named there lose
classes;
classes under a --keep prefix stay in trimmed jars too (Scala's specialized function classes, which Spark's code
loads by the types a call meets, and guava's cache, whose removal classes load only when an entry is replaced or
evicted: paths a short recorded run may never take);
entries under a --drop prefix are left out (locale data no code path of the pack reads).
With --stored the entries are written uncompressed, for a pack that is xz-compressed as a whole (xz compresses across
classes, which deflate per entry cannot); otherwise they are deflated.
"""
import os
import re
import sys
import zipfile

TRIM_FROM_BYTES = 500_000
NATIVE = re.compile(r"\.(so|so\.\d+|dll|dylib|jnilib|a)$")
OTHER_PLATFORM = re.compile(r"(aarch|arm|ppc|s390|riscv|loongarch|sparc|mips|musl|osx|darwin|mac|win|freebsd|aix|"
                            r"sunos|i386|x86/|linux32|/x86\b|-x86\.)", re.I)


def loaded_classes(log):
    loaded = {}
    for line in open(log, errors="replace"):
        m = re.search(r"\] (\S+) source: (?:jar:)?file:(\S+?\.jar)", line) or \
            re.search(r"\[class,load\] (\S+) source: (?:jar:)?file:(\S+?\.jar)", line)
        if m:
            loaded.setdefault(os.path.basename(m.group(2)), set()).add(m.group(1).replace(".", "/") + ".class")
    return loaded


def keep_native(name, any_class_loaded):
    return any_class_loaded and not OTHER_PLATFORM.search(name)


def trim(jar, out_dir, keep, keep_prefixes, drop, trim_classes, stored):
    dst = os.path.join(out_dir, os.path.basename(jar))
    kept = 0
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(jar) as zin, zipfile.ZipFile(dst, "w", method) as zout:
        for e in zin.infolist():
            n = e.filename
            if any(n.startswith(d) for d in drop):
                continue
            if n.endswith(".class") and trim_classes:
                outer = re.sub(r"\$.*\.class$", ".class", n)
                if n not in keep and outer not in keep and not any(n.startswith(k) for k in keep_prefixes):
                    continue
                kept += 1
            elif NATIVE.search(n) and not keep_native(n, bool(keep)):
                continue
            data = zin.read(n)
            e.compress_type = method
            zout.writestr(e, data)
    return kept


def main(argv):
    log, out_dir, rest = argv[0], argv[1], argv[2:]
    lists = {"--keep-whole": [], "--keep": [], "--drop": [], "--trim-only": []}
    stored = False
    if rest and rest[0] == "--stored":
        stored, rest = True, rest[1:]
    while rest and rest[0] in lists:
        lists[rest[0]].append(rest[1])
        rest = rest[2:]
    whole, drop, only = lists["--keep-whole"], lists["--drop"], lists["--trim-only"]
    loaded = loaded_classes(log)
    os.makedirs(out_dir, exist_ok=True)
    for jar in rest:
        name = os.path.basename(jar)
        keep = loaded.get(name, set())
        if only:
            whole_classes = not any(name.startswith(p) for p in only)
        else:
            whole_classes = any(name.startswith(p) for p in whole) or os.path.getsize(jar) < TRIM_FROM_BYTES
        trim(jar, out_dir, keep, lists["--keep"], drop, not whole_classes, stored)


if __name__ == "__main__":
    main(sys.argv[1:])
