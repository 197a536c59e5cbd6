# Deephaven Application Mode: the server runs this application's script at start
# (-Ddeephaven.application.dir names this directory). Its one field is the dashboard.
type=script
scriptType=python
enabled=true
id=io.alerthaven.dashboard
name=alerthaven
file_0=alerthaven_dashboard.py
