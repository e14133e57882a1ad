using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRbd
{
    [LibraryImport(Library, EntryPoint = "rbd_metadata_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rbd_metadata_set(nint image, string key, string value);
}
