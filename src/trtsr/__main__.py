from trtsr.cli import run

run()
