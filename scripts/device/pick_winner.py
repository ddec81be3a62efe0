"""Pick the ablation's winning Panacea variant (highest judge hypervolume on the dev requests) and print
the --set arguments that move it into chat3d.toml's panacea entry."""
import glob, json, sys, tomllib
runs = sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs"  # the --out folder the ablation ran under
run = sorted(glob.glob(f"{runs}/chat3d-ablation-*"))[-1]
res = json.load(open(f"{run}/results.json"))
study = tomllib.load(open("studies/chat3d_ablation.toml", "rb"))
variants = {n: m for n, m in study["methods"].items() if m.get("method") == "panacea"}
hv = {n: res["methods"][n]["summary"]["hypervolume"] for n in variants if n in res["methods"]}
hv["soups"] = res["methods"]["soups"]["summary"]["hypervolume"]
print("hypervolume", json.dumps(hv), file=sys.stderr)
best = max(variants, key=lambda n: hv.get(n, -1))
print("winner", best, file=sys.stderr)
skip = {"method", "data", "steps", "per_dimension", "lr", "max_tokens", "grid_step"}
args = []
for key, value in variants[best].items():
    if key in skip:
        continue
    value = str(value).lower() if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else value)
    args += ["--set", f"methods.panacea.{key}={value}"]
soups = study["methods"]["soups"]  # the baseline keeps the ablation's early stopping, whatever it was set to
args += [a for key in ("holdout", "eval_every") if key in soups for a in ("--set", f"methods.soups.{key}={soups[key]}")]
print(" ".join(args))
