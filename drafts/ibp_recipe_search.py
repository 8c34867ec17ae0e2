"""Explore IBP CPU recipes outside the model cache (one thread, so the notebook run keeps its core)."""
import sys, time, math, json, functools
import torch
torch.set_num_threads(1)
from advex.data import load_mnist
from advex.evaluate import correct
from advex.intervals import proportion
from advex.verify import verified_by_ibp, verified_by_crown
from advex.verify.training import ibp_network, ibp_loss, IBPSchedule
from advex.train import train_classifier
cfg = json.loads(sys.argv[1])
xtr, ytr = load_mnist("train"); xte, yte = load_mnist("test")
n = cfg["train_size"]; bs = cfg.get("batch_size", 100)
spe = math.ceil(n / bs)
sched = IBPSchedule(cfg["train_eps"], warmup_steps=int(cfg["warmup_epochs"] * spe), ramp_steps=int(cfg["ramp_epochs"] * spe), kappa_end=cfg["kappa_end"])
torch.manual_seed(0)
net = ibp_network(cfg.get("network", "small"))
t = time.time()
train_classifier(net, xtr[:n], ytr[:n], epochs=cfg["epochs"], lr=cfg.get("lr", 1e-3), batch_size=bs, seed=0,
                 loss_fn=functools.partial(ibp_loss, schedule=sched))
train_s = time.time() - t
net.eval()
x, y = xte[:1000], yte[:1000]
clean = correct(net, x, y); ibp = verified_by_ibp(net, x, y, 0.1)
crown = verified_by_crown(net, x, y, 0.1, intermediate="ibp")
print(json.dumps(cfg), f"train {train_s:.0f}s (1 thread)", "clean", proportion(int(clean.sum()), 1000).text(),
      "IBP", proportion(int(ibp.sum()), 1000).text(), "IBP|CROWN", proportion(int((ibp | crown).sum()), 1000).text(), flush=True)
