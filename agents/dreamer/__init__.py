"""agents/dreamer"""
