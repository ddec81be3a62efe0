"""Apply studies/chat3d_budget.toml's rule (its description) to a finished run and print the --set
arguments that move the choice into chat3d.toml: the steps for both methods and Panacea's lr."""
import glob, json, statistics, sys, tomllib
runs = sys.argv[1] if len(sys.argv) > 1 else "/tmp/runs"
run = sorted(glob.glob(f"{runs}/chat3d-budget-*"))[-1]
res = json.load(open(f"{run}/results.json"))["methods"]
study = tomllib.load(open("studies/chat3d_budget.toml", "rb"))["methods"]


def hv(name): return res[name]["summary"]["hypervolume"]
def ppl(name): return statistics.mean(v for k, v in res[name]["summary"].items() if k.startswith("perplexity@"))


for name in res:
    if name != "base":
        print(f"{name}: hv {hv(name):.4f} hv[lm] {res[name]['summary'].get('hypervolume[lm]', float('nan')):.4f} ppl {ppl(name):.3f}", file=sys.stderr)
for steps, soups in ((50, "soups_50"), (100, "soups")):
    panacea = [n for n, m in study.items() if m.get("method") == "panacea" and m["steps"] == steps and n in res]
    eligible = [n for n in panacea if hv(n) >= hv(soups)]
    if eligible:
        best = min(eligible, key=ppl)
        print(f"choice: {best} ({steps} steps)", file=sys.stderr)
        print(f"--set methods.panacea.steps={steps} --set methods.soups.steps={steps} --set methods.panacea.lr={study[best]['lr']}")
        break
else:
    print("choice: none beats soups; chat3d.toml unchanged", file=sys.stderr)
