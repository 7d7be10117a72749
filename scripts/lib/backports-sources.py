#!/usr/bin/env python3
"""backports-sources.py CODENAME SOURCES.LIST [FILE.sources...]

Print a deb822 stanza for CODENAME-backports on the same mirror (URIs,
Signed-By) that the machine's apt sources use for CODENAME itself, so
scripts/setup-deps can reach backports without a hard-coded mirror host.
Reads one-line `deb` entries from SOURCES.LIST and deb822 stanzas from the
.sources files. Exits 1 when no entry for CODENAME is found.
"""
import sys


def one_line_entries(path):
    try:
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return
    for line in lines:
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        options = ""
        if words and words[0].startswith("["):
            opts = []
            while words:
                w = words.pop(0)
                opts.append(w)
                if w.endswith("]"):
                    break
            options = " ".join(opts).strip("[]")
        if len(words) >= 2:
            signed = ""
            for o in options.split():
                if o.startswith("signed-by="):
                    signed = o.split("=", 1)[1]
            yield [words[0]], [words[1]], signed


def deb822_entries(path):
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        return
    for block in text.split("\n\n"):
        fields = {}
        key = None
        for line in block.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            if ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        yield fields.get("uris", "").split(), fields.get("suites", "").split(), fields.get("signed-by", "")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    codename = sys.argv[1]
    entries = list(one_line_entries(sys.argv[2]))
    for path in sys.argv[3:]:
        entries.extend(deb822_entries(path))
    for uris, suites, signed in entries:
        if codename in suites and uris:
            print("Types: deb")
            print("URIs: " + " ".join(uris))
            print("Suites: %s-backports" % codename)
            print("Components: main")
            if signed and "\n" not in signed:
                print("Signed-By: " + signed)
            return
    sys.exit(1)


if __name__ == "__main__":
    main()
