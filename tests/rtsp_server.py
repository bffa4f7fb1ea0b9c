"""A real RTSP server for the tests: serves one video file on 127.0.0.1 (GStreamer).

Run it with Debian's interpreter, which has ``gi`` (the project's virtualenv does not)::

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --mount /gate --file clip.mp4 [--loop]

Every client connection gets its own pipeline that plays the file from its start, paced at
the file's frame rate like a live camera. MPEG-4 Part 2 ("mp4v", what OpenCV writes) and
H.264 in MP4 are sent as they are; anything else is transcoded to H.264. With ``--loop``
the file repeats forever (non-flushing segment seeks, so RTP timestamps keep rising);
without it the stream ends at the end of the file and the server keeps running.
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
PASS_H264 = "qtdemux ! h264parse ! rtph264pay config-interval=-1"
TRANSCODE = (
    "decodebin ! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25"
    " ! rtph264pay config-interval=-1"
)


class LoopingMedia(GstRtspServer.RTSPMedia):
    """A media that plays its file forever: a segment seek at the start and at each end."""

    def arm(self) -> None:
        """Hold the first buffer at the payloader until the initial segment seek is done."""
        self.held = False
        pad = self.get_element().get_by_name("pay0").get_static_pad("sink")
        pad.add_probe(Gst.PadProbeType.BLOCK | Gst.PadProbeType.BUFFER, self._hold)

    def _hold(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if not self.held:  # seeking after it passed would send the first frame twice
            self.held = True
            GLib.idle_add(self._start, pad, info.id)
        return Gst.PadProbeReturn.OK

    def _start(self, pad: Gst.Pad, probe_id: int) -> bool:
        self._rewind(Gst.SeekFlags.SEGMENT | Gst.SeekFlags.FLUSH)  # drops the held buffer
        pad.remove_probe(probe_id)
        return False

    def do_handle_message(self, message: Gst.Message) -> bool:
        """At the end of the file, go back to its start without a flush."""
        if message.type == Gst.MessageType.SEGMENT_DONE:
            return self._rewind(Gst.SeekFlags.SEGMENT)
        return GstRtspServer.RTSPMedia.do_handle_message(self, message)

    def _rewind(self, flags: Gst.SeekFlags) -> bool:
        pipeline = self.get_element().get_parent()
        return pipeline.seek(
            1.0, Gst.Format.TIME, flags, Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1
        )


def choose_chain(video: Path) -> str:
    """The demux-to-payloader chain for ``video``: pass-through when the codec allows."""
    info = GstPbutils.Discoverer.new(10 * Gst.SECOND).discover_uri(Gst.filename_to_uri(str(video)))
    streams = info.get_video_streams()
    if not streams:
        raise ValueError(f"{video}: no video stream")
    container = info.get_stream_info().get_caps().get_structure(0).get_name()
    codec = streams[0].get_caps().get_structure(0)
    if container == "video/quicktime":
        if codec.get_name() == "video/mpeg" and codec.get_value("mpegversion") == 4:
            return PASS_MPEG4
        if codec.get_name() == "video/x-h264":
            return PASS_H264
    return TRANSCODE


def main() -> int:
    """Parse the arguments, serve until a signal arrives."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/gate")
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--loop", action="store_true", help="repeat the file forever")
    args = parser.parse_args()
    video = args.file.resolve()
    try:
        if not video.is_file():
            raise ValueError(f"{video}: no such file")
        chain = choose_chain(video)
    except (ValueError, GLib.Error) as error:
        print(f"rtsp_server: cannot serve {video}: {error}", file=sys.stderr)
        return 2

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f"( filesrc name=src ! {chain} name=pay0 pt=96 )")
    factory.set_shared(False)  # each client starts at the beginning of the file
    if args.loop:
        factory.set_media_gtype(LoopingMedia)

    def configure(_factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia) -> None:
        media.get_element().get_by_name("src").set_property("location", str(video))
        if isinstance(media, LoopingMedia):
            media.arm()

    factory.connect("media-configure", configure)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    server.get_mount_points().add_factory(args.mount, factory)
    if not server.attach(None):  # binds (SO_REUSEADDR) and listens, or fails
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
