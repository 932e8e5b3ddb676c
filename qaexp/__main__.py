"""`python -m qaexp [overrides]`: compose the config with Hydra, run one experiment (or a sweep with -m)."""
import logging
import signal
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import qaexp.config  # noqa: F401  (registers the config schemas)
from qaexp.errors import QAExpError

log = logging.getLogger("qaexp")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from qaexp.experiment import run

    try:
        return run(cfg, HydraConfig.get().runtime.output_dir)["f1"]
    except QAExpError as err:
        log.error("%s", err)
        print(f"qaexp: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as err:  # RunInterrupted for SIGTERM too; metrics.json says status: interrupted
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"qaexp: interrupted by {signal.Signals(signum).name}: metrics.json in the run directory says "
              "status: interrupted; interrupted_model/ there holds the model trained so far", file=sys.stderr)
        sys.exit(128 + signum)


if __name__ == "__main__":
    main()
