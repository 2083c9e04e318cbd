"""A miniature data root with the layout of the real one: ``identification/`` (LFW-like and CFP-like folders,
``MANIFEST.tsv``), ``SHA256SUMS`` listing the manifest, and ``verification/{lfw,cfp_fp,cfp_ff}.bin`` whose
images are byte-identical to folder files. Synthetic faces, built in a second.

Every protocol of :mod:`fr.eval.suite` runs on it, so it serves the tests of the protocols and the chapters'
smoke mode (:meth:`fr.chapter.Chapter.prepare` with ``mode="smoke"``), which must run every code path without
the real faces."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ._util import encode_jpeg
from .bins import save_bin
from .datasets import synthetic_faces

# LFW-like identity sizes: one large identity (beyond the cap), a few small ones, several with one image
LFW_SIZES = (14, 5, 3, 2, 2, 1, 1, 1, 1, 1)
CFP_IDS, CFP_FRONTAL, CFP_PROFILE = 4, 10, 4
SIZE = 32


def build(root: str | Path) -> dict:
    """Write the data root under ``root``; returns what the tests need to know about it (``root``, the
    manifest's sha256, the image counts and a byte-identical pair of files under two identities)."""
    root = Path(root)
    ident = root / "identification"
    lines = ["path\tidentity\talignment\tsha256"]
    jpegs: dict[str, bytes] = {}
    lfw_faces = synthetic_faces(len(LFW_SIZES), max(LFW_SIZES), size=SIZE, seed=1)
    for k, n in enumerate(LFW_SIZES):
        name = f"Person_{chr(65 + k)}"
        for j in range(n):
            rel = f"lfw/{name}/{name}_{j + 1:04d}.jpg"
            # the first image of Person_B is a detector fallback: the gallery takes the next one
            align = "fallback" if (k == 1 and j == 0) else "detected"
            jpegs[rel] = encode_jpeg(lfw_faces.images[k * max(LFW_SIZES) + j], 90)
            if name == "Person_J":   # a byte-identical copy filed under another identity, as LFW has two
                jpegs[rel] = jpegs["lfw/Person_I/Person_I_0001.jpg"]
            lines.append(f"{rel}\tlfw:{name}\t{align}\t{hashlib.sha256(jpegs[rel]).hexdigest()}")
    per = CFP_FRONTAL + CFP_PROFILE
    cfp_faces = synthetic_faces(CFP_IDS, per, size=SIZE, seed=2)
    for k in range(CFP_IDS):
        for j in range(per):
            pose, num = ("frontal", j + 1) if j < CFP_FRONTAL else ("profile", j - CFP_FRONTAL + 1)
            rel = f"cfp/{k + 1:03d}/{pose}/{num:02d}.jpg"
            jpegs[rel] = encode_jpeg(cfp_faces.images[k * per + j], 90)
            lines.append(f"{rel}\tcfp:{k + 1:03d}\tdetected\t{hashlib.sha256(jpegs[rel]).hexdigest()}")
    for rel, data in jpegs.items():
        p = ident / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    manifest = ident / "MANIFEST.tsv"
    manifest.write_text("\n".join(lines) + "\n")
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    (root / "SHA256SUMS").write_text(f"{digest}  identification/MANIFEST.tsv\n")

    # .bin sets: 20 pairs each (2 per fold, one same and one different), images copied byte for byte
    lfw_multi = [[f"lfw/Person_{chr(65 + k)}/Person_{chr(65 + k)}_{j + 1:04d}.jpg" for j in range(n)]
                 for k, n in enumerate(LFW_SIZES)]
    cfp_f = [[f"cfp/{k + 1:03d}/frontal/{j + 1:02d}.jpg" for j in range(CFP_FRONTAL)] for k in range(CFP_IDS)]
    cfp_p = [[f"cfp/{k + 1:03d}/profile/{j + 1:02d}.jpg" for j in range(CFP_PROFILE)] for k in range(CFP_IDS)]

    def pairs(first, second, n_pairs=20):
        out, same = [], []
        multi = [i for i in range(len(first)) if len(first[i]) >= 2 or first is not second]
        for p in range(n_pairs):
            a = multi[p % len(multi)]
            if p % 2 == 0:
                x, y = first[a][p % len(first[a])], second[a][(p + 1) % len(second[a])]
                if x == y:
                    y = second[a][(p + 2) % len(second[a])]
            else:
                b = (a + 1 + p) % len(first)
                b = b if b != a else (b + 1) % len(first)
                x, y = first[a][0], second[b][-1]
            out += [jpegs[x], jpegs[y]]
            same.append(p % 2 == 0)
        return out, same

    (root / "verification").mkdir(parents=True, exist_ok=True)
    for name, (a, b) in {"lfw": (lfw_multi, lfw_multi), "cfp_fp": (cfp_f, cfp_p), "cfp_ff": (cfp_f, cfp_f)}.items():
        imgs, same = pairs(a, b)
        save_bin(root / "verification" / f"{name}.bin", imgs, same)
    return {"root": root, "manifest_sha256": digest, "n_lfw": sum(LFW_SIZES), "n_cfp": CFP_IDS * per,
            "duplicate": ("lfw/Person_I/Person_I_0001.jpg", "lfw/Person_J/Person_J_0001.jpg")}
