//! The framed protocol spoken between the in-guest agent and the host over the data channel.
