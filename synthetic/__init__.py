"""glassware.synthetic"""

from glassware.labels import BACKGROUND

# The paper's Table 2: flasks A-D, disinfectant bottle E, blue-gel bottles F and G, drinking glass J, and
# `other` (unrelated vessels and controls; Vector-LabPics in the paper).
CLASSES = ["A", "B", "C", "D", "E", "F", "G", "J", "other"]
# Not in the paper: the empty scene, which a gripper camera sees between objects. Rendered only when asked
# for (`--count background=N`), after the paper's classes so that their images stay the same.
DATASET_CLASSES = [*CLASSES, BACKGROUND]
