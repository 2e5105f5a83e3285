"""glassware.training"""
