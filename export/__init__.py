"""glassware.export"""
