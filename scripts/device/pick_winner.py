"""Read the ablation's winning setting from its results.json (``comparison.pick``: chosen on the dev requests,
read from the paired hypervolume intervals against soups on both judges; steerlab/analysis/pick.py) and print
the --set arguments that move it into chat3d.toml's panacea entry. No winner: nothing is printed on stdout."""
import glob, json, sys, tomllib
runs = sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs"  # the --out folder the ablation ran under
run = sorted(glob.glob(f"{runs}/chat3d-ablation-*"))[-1]
pick = json.load(open(f"{run}/results.json"))["comparison"]["pick"]
study = tomllib.load(open("studies/chat3d_ablation.toml", "rb"))
for name, per_judge in pick["candidates"].items():
    cells = {j: (t["difference"]["value"], t["difference"]["interval"], t["verdict"]) if t else None for j, t in per_judge.items()}
    print(name, "qualifies" if pick["qualifies"][name] else "-", json.dumps(cells), file=sys.stderr)
print("winner", pick["winner"], "-", pick["reason"], file=sys.stderr)
if pick["winner"] is None:
    sys.exit(0)
skip = {"method", "data", "steps", "per_dimension", "lr", "max_tokens", "grid_step"}
args = []
for key, value in study["methods"][pick["winner"]].items():
    if key in skip:
        continue
    value = str(value).lower() if isinstance(value, bool) else (f'"{value}"' if isinstance(value, str) else value)
    args += ["--set", f"methods.panacea.{key}={value}"]
soups = study["methods"]["soups"]  # the baseline keeps the ablation's early stopping, whatever it was set to
args += [a for key in ("holdout", "eval_every") if key in soups for a in ("--set", f"methods.soups.{key}={soups[key]}")]
print(" ".join(args))
