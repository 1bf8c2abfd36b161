"""A small EasyVVUQ 1.3 PCE campaign run twice, through QCGPJPool on qcg_pilotjob's built-in
executor API and in process, with the same results expected (scripts/install-with-easyvvuq
runs it after the install).

Model: f(x, y) = x + y^2 with x, y ~ U(0, 1); order-2 PCE over 2 parameters = 9 runs; the
mean of f is 1/2 + 1/3 and its variance 1/12 + 4/45, exactly, for a PCE of that order.

    python scripts/easyvvuq_campaign.py WORKDIR
"""

import json
import os
import sys
import time

import chaospy as cp
import easyvvuq as uq
import numpy as np
from easyvvuq.actions import Actions, CreateRunDirectory, Decode, Encode, ExecuteLocal, QCGPJPool

from qcg.pilotjob.executor_api.qcgpj_executor import QCGPJExecutor

MODEL = """import json, sys
p = json.load(open(sys.argv[1]))
open("out.csv", "w").write("f\\n%r\\n" % (p["x"] + p["y"] ** 2))
"""


def campaign(work: str, name: str, pool=None):
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "model.py")
    with open(model, "w") as fh:
        fh.write(MODEL)
    template = os.path.join(work, "input.template")
    with open(template, "w") as fh:
        fh.write('{"x": $x, "y": $y}')
    params = {"x": {"type": "float", "default": 0.5}, "y": {"type": "float", "default": 0.5}}
    actions = Actions(CreateRunDirectory(root=work, flatten=True),
                      Encode(uq.encoders.GenericEncoder(template_fname=template, delimiter="$",
                                                        target_filename="input.json")),
                      ExecuteLocal(f"{sys.executable} {model} input.json"),
                      Decode(uq.decoders.SimpleCSV(target_filename="out.csv", output_columns=["f"])))
    camp = uq.Campaign(name=name, params=params, actions=actions, work_dir=work)
    camp.set_sampler(uq.sampling.PCESampler(vary={"x": cp.Uniform(0, 1), "y": cp.Uniform(0, 1)},
                                            polynomial_order=2))
    t0 = time.perf_counter()
    camp.execute(pool=pool).collate() if pool is not None else camp.execute().collate()
    spent = time.perf_counter() - t0
    runs = len(camp.get_collation_result())
    results = camp.analyse(qoi_cols=["f"])
    mean, std = (float(np.ravel(results.describe("f", what))[0]) for what in ("mean", "std"))
    return runs, mean, std, spent


def main() -> int:
    work = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "easyvvuq-run")
    with QCGPJExecutor(wd=os.path.join(work, "qcgpj"), resources="4") as executor:
        pooled = campaign(os.path.join(work, "pool"), "pce_pool", QCGPJPool(qcgpj_executor=executor))
    local = campaign(os.path.join(work, "local"), "pce_local")
    exact_mean, exact_std = 0.5 + 1 / 3, (1 / 12 + 4 / 45) ** 0.5
    report = {"through_qcgpj": pooled, "in_process": local, "exact": (9, exact_mean, exact_std)}
    print(json.dumps(report))
    ok = (pooled[0] == local[0] == 9 and abs(pooled[1] - local[1]) < 1e-12 and abs(pooled[2] - local[2]) < 1e-12
          and abs(pooled[1] - exact_mean) < 1e-9 and abs(pooled[2] - exact_std) < 1e-9)
    print("easyvvuq campaign through qcg_pilotjob:", "same results" if ok else "DIFFERENT results")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
