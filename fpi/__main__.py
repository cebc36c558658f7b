from fpi.cli import app

app(prog_name="fpi")
