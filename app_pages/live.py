"""Live: the browser's camera explained frame by frame (the chosen method at one layer, the top-3, the frame rate
and latency), with Freeze to open a frame on Explain and snapshots where no stream can run."""
import streamlit as st

from ui.live import page

st.title("Live")  # before the controls: on screen while a cold server starts
page()
