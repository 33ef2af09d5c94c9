print("udr")
