print("stapler")
