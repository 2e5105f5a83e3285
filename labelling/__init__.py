"""Label collected frames in a browser page (`glassware label DIR --bundle BUNDLE`): class folders for `train`."""
