"""The networks: MTCNN detection, face crops, FaceNet embeddings, and where their weights come from."""
