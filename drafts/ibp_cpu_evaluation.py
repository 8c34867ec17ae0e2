import time, torch
from advex.data import load_mnist
from advex.evaluate import correct
from advex.intervals import proportion
from advex.verify import verified_by_ibp, verified_by_crown, survives_attacks
from advex.verify.training import ibp_network
state = torch.load(__import__("sys").argv[1], weights_only=True)
model = ibp_network("small"); model.load_state_dict(state["model"]); model.eval()
x, y = load_mnist("test"); x, y = x[:1000], y[:1000]
t = time.time()
clean = correct(model, x, y); ibp = verified_by_ibp(model, x, y, 0.1)
crown = verified_by_crown(model, x, y, 0.1, intermediate="ibp")
print("n=1000 clean", proportion(int(clean.sum()), 1000).text(), "IBP", proportion(int(ibp.sum()), 1000).text(),
      "CROWN-IBP", proportion(int((crown | ibp).sum()), 1000).text(), f"{time.time()-t:.0f}s", flush=True)
n = 300
emp = survives_attacks(model, x[:n], y[:n], 0.1)
v = (ibp | crown)[:n]
print(f"n={n} empirical", proportion(int(emp.sum()), n).text(), "verified", proportion(int(v.sum()), n).text(),
      "verified-but-broken", int((v & ~emp).sum()), f"{time.time()-t:.0f}s", flush=True)
