"""Grad-CAM Studio: entry point. Wires navigation; each page draws the shared sidebar."""
import streamlit as st

st.set_page_config(page_title="Grad-CAM Studio", page_icon="🔥", layout="wide")

pages = [
    st.Page("pages/explain.py", title="Explain", icon="🔎", default=True),
]
st.navigation(pages).run()
