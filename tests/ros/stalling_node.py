"""classifier_node whose classifier blocks while the file named by its first argument exists: a stalled worker,
for the health tests. Usage: python stalling_node.py FLAG --ros-args ..."""

import sys
import time
from pathlib import Path

from glassware.edge_runtime.classifier import Classifier
from glassware_vision import classifier_node

flag = Path(sys.argv[1])
classify_frame = Classifier.classify_frame


def stalling(self, *args, **kwargs):
    while flag.exists():
        time.sleep(0.05)
    return classify_frame(self, *args, **kwargs)


Classifier.classify_frame = stalling
sys.exit(classifier_node.main())
