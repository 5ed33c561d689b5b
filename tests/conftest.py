import os

import pytest
import torch

# Parallel test workers on a 2-core box must not oversubscribe (see ENVIRONMENT.md).
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
