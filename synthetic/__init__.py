"""glassware.synthetic"""
