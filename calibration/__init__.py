"""glassware.calibration"""
