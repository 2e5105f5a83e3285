"""glassware.synthetic"""

# The paper's Table 2: flasks A-D, disinfectant bottle E, blue-gel bottles F and G, drinking glass J, and
# `other` (unrelated vessels and controls; Vector-LabPics in the paper).
CLASSES = ["A", "B", "C", "D", "E", "F", "G", "J", "other"]
