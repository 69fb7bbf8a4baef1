"""(rules added here)"""
