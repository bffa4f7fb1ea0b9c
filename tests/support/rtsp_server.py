"""A real RTSP server for the tests: serves one video file on 127.0.0.1 with GStreamer.

Run by Debian's Python, which has ``gi`` (the virtualenv does not): ``/usr/bin/python3
tests/support/rtsp_server.py --port 8554 --mount /gate --file clip.mp4 [--loop]``.
Each client connection gets its own pipeline playing the file from its start at its frame
rate, like a live camera. MPEG-4 Part 2 in MP4 (OpenCV's "mp4v") is sent as it is; anything
else is transcoded to H.264. ``--loop`` repeats the file forever (non-flushing segment seeks:
RTP timestamps keep rising); without it the stream ends with the file, the server stays up.
Prints ``READY rtsp://127.0.0.1:PORT/MOUNT`` once listening; exits on SIGTERM or SIGINT.
"""

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstPbutils", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstPbutils, GstRtspServer  # noqa: E402

Gst.init(None)  # before the subclass below: its signals need Gst's types registered

PASS_MPEG4 = "qtdemux ! mpeg4videoparse ! rtpmp4vpay"
TO_H264 = "decodebin ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay"


class LoopingMedia(GstRtspServer.RTSPMedia):
    """A media that plays its file forever: a segment seek at the start and at each end."""

    def arm(self) -> None:
        """Hold the first buffer at the payloader until the initial segment seek is done."""
        self.held, self.passes = 0, 0
        self.pad = self.get_element().get_by_name("pay0").get_static_pad("sink")
        self.pad.add_probe(Gst.PadProbeType.BLOCK | Gst.PadProbeType.BUFFER, self._hold)
        self.pad.add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, self._shift)

    def _hold(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if not self.held:  # seeking once it has passed would send the first frame twice
            self.held = GLib.idle_add(self._start, info.id)
        return Gst.PadProbeReturn.OK

    def _start(self, probe_id: int) -> bool:
        self._rewind(Gst.SeekFlags.SEGMENT | Gst.SeekFlags.FLUSH)  # drops the held buffer
        self.pad.remove_probe(probe_id)
        return GLib.SOURCE_REMOVE

    def do_handle_message(self, message: Gst.Message) -> bool:
        """At the end of the file, go back to its start without a flush."""
        if message.type == Gst.MessageType.SEGMENT_DONE:
            return self._rewind(Gst.SeekFlags.SEGMENT)
        return GstRtspServer.RTSPMedia.do_handle_message(self, message)

    def _rewind(self, flags: Gst.SeekFlags) -> bool:
        seek = Gst.Event.new_seek(1.0, Gst.Format.TIME, flags, Gst.SeekType.SET, 0, 0, -1)
        return self.pad.push_event(seek)  # upstream, from the payloader's sink pad

    def _shift(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        # qtdemux may start a pass at the last frame's time, not the file's end: fix that.
        event = info.get_event()
        if event.type == Gst.EventType.SEGMENT and (base := event.parse_segment().base):
            self.passes += 1
            pad.set_offset(self.passes * pad.peer_query_duration(Gst.Format.TIME)[1] - base)
        return Gst.PadProbeReturn.OK


def choose_chain(video: Path) -> str:
    """The demuxer-to-payloader chain for ``video``: MPEG-4 passes through unchanged."""
    info = GstPbutils.Discoverer.new(10 * Gst.SECOND).discover_uri(Gst.filename_to_uri(str(video)))
    if not (streams := info.get_video_streams()):
        raise ValueError("no video stream")
    container = info.get_stream_info().get_caps().get_structure(0).get_name()
    codec = streams[0].get_caps().get_structure(0)
    mpeg4 = codec.get_name() == "video/mpeg" and codec.get_value("mpegversion") == 4
    return PASS_MPEG4 if mpeg4 and container == "video/quicktime" else TO_H264


def main() -> int:
    """Serve the file until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/gate")
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--loop", action="store_true", help="repeat the file forever")
    args = parser.parse_args()
    video = args.file.resolve()
    try:
        chain = choose_chain(video)
    except (ValueError, GLib.Error) as error:  # GLib.Error: missing or unreadable file
        print(f"rtsp_server: cannot serve {video}: {error}", file=sys.stderr)
        return 2
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc name=src ! {chain} name=pay0 pt=96 )")
    if args.loop:
        factory.set_media_gtype(LoopingMedia)

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        media.get_element().get_by_name("src").set_property("location", str(video))
        if isinstance(media, LoopingMedia):
            media.arm()

    factory.connect("media-configure", configure)
    server = GstRtspServer.RTSPServer(address="127.0.0.1", service=str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    if not server.attach(None):  # binds (with SO_REUSEADDR) and listens, or fails
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    print(f"READY rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
