import UDRCLI

await UDRMain.run()
