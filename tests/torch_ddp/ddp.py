# A user's PyTorch DDP script (gloo, CPU), as it would run under torchrun:
# env:// from the launcher's variables, a few steps of DistributedDataParallel,
# then a check that every rank holds the same parameters, and a broadcast of
# a marker string so a packet capture can tell whether gloo's traffic is
# readable on the wire.
import os
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(1234 + rank)  # different data per rank; DDP keeps the weights equal
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(64, 8))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(5):
    x, y = torch.randn(32, 64), torch.randn(32, 8)
    loss = torch.nn.functional.mse_loss(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    print(f"ddp: rank {rank}/{world} on {os.environ['SM_CURRENT_HOST']} step {step} loss {loss.item():.4f}", flush=True)
flat = torch.cat([p.detach().flatten() for p in model.parameters()])
gathered = [torch.empty_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
assert all(torch.equal(g, gathered[0]) for g in gathered), "ranks disagree on the weights"
marker = torch.tensor(list(b"SAGERUN-GLOO-MARKER-" * 50), dtype=torch.uint8)
dist.broadcast(marker if rank == 0 else torch.zeros_like(marker), src=0)
dist.destroy_process_group()
print(f"ddp check passed: rank {rank}/{world}", flush=True)
