"""Developer conveniences: the embedded broker launcher (`bcs-dev`) and the demo (`bcs-demo`)."""
